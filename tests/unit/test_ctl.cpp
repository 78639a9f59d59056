// freehactl's reading of the status document (ClusterView) and the lines it builds from it.
#include <gtest/gtest.h>

#include "core/status.h"
#include "ctl/client.h"

using namespace freeha;
using namespace freeha::ctl;

namespace {

Status with_addresses() {
    Status s;
    s.cluster = "web";
    s.node = "alpha";
    s.addresses = {{"192.0.2.10/24", "eth0", true, "", 0}, {"2001:db8::10/64", "eth1", false, "52:54:00:12:34:56", 3}};
    return s;
}

}  // namespace

TEST(ClusterView, ReadsEveryAddressOfTheStatusDocument) {
    auto v = ClusterView::from(to_json(with_addresses()));
    ASSERT_TRUE(v);
    ASSERT_EQ(v->addresses.size(), 2u);
    EXPECT_EQ(v->addresses[0].address, "192.0.2.10/24");
    EXPECT_EQ(v->addresses[0].device, "eth0");
    EXPECT_TRUE(v->addresses[0].up);
    EXPECT_EQ(v->addresses[0].foreign_mac, "");
    EXPECT_EQ(v->addresses[0].conflicts, 0u);
    EXPECT_EQ(v->addresses[1].address, "2001:db8::10/64");
    EXPECT_FALSE(v->addresses[1].up);
    EXPECT_EQ(v->addresses[1].foreign_mac, "52:54:00:12:34:56");
    EXPECT_EQ(v->addresses[1].conflicts, 3u);
}

TEST(ClusterView, ADocumentWithoutAddressesHasNone) {
    auto document = to_json(with_addresses());
    document.erase("addresses");  // a daemon from before Address=
    auto v = ClusterView::from(document);
    ASSERT_TRUE(v);
    EXPECT_TRUE(v->addresses.empty());
    document["addresses"] = nlohmann::json::array({{{"address", "192.0.2.10/24"}}});  // malformed: not understood
    EXPECT_FALSE(ClusterView::from(document));
}

struct DescribeCase {
    ClusterView::Address address;
    const char* line;
};

class AddressLine : public ::testing::TestWithParam<DescribeCase> {};

TEST_P(AddressLine, SaysWhereTheAddressIsAndWhoElseAnswersForIt) {
    EXPECT_EQ(GetParam().address.describe(), GetParam().line);
}

INSTANTIATE_TEST_SUITE_P(
    Every, AddressLine,
    ::testing::Values(
        DescribeCase{{"192.0.2.10/24", "eth0", true, "", 0}, "192.0.2.10/24 on eth0: up here"},
        DescribeCase{{"192.0.2.10/24", "eth0", false, "", 0}, "192.0.2.10/24 on eth0: not here"},
        DescribeCase{{"192.0.2.10/24", "eth0", true, "aa:bb:cc:dd:ee:ff", 1},
                     "192.0.2.10/24 on eth0: up here (another host answers for it: MAC aa:bb:cc:dd:ee:ff, 1 time)"},
        DescribeCase{{"2001:db8::10/64", "eth1", false, "52:54:00:12:34:56", 3},
                     "2001:db8::10/64 on eth1: not here (another host answers for it: MAC 52:54:00:12:34:56, 3 times)"}),
    [](const auto& info) { return "Case" + std::to_string(info.index); });
