// The org.freeha1 objects (ManagerObject) on a private dbus-daemon, called from a second connection.
//
// What the daemon's end cannot show from outside: a getter or method that
// throws answers the caller with an error (on 5147070 the exception unwound
// through sd-bus and out of the loop: abort), and a mutating call is answered only
// when the handler replies, however late.
#include <gtest/gtest.h>

#include <cstring>
#include <ostream>
#include <optional>
#include <string>
#include <vector>

#include "bus/manager_object.h"
#include "bus/sd_ptr.h"
#include "private_bus.h"

using namespace freeha;

namespace freeha {
// Readable in a failure.
void PrintTo(const AddressStatus& a, std::ostream* out) {
    *out << "(" << a.address << ", " << a.device << ", " << (a.up ? "up" : "not up") << ", '" << a.foreign_mac
         << "', " << a.conflicts << ")";
}
}  // namespace freeha

namespace {

struct Answer {
    bool arrived = false;
    std::string error;  // name, or "" for a method return
    std::string text;   // the error's message, or the reply's string if any
};

class ManagerObjectTest : public PrivateBusTest {
protected:
    void SetUp() override {
        PrivateBusTest::SetUp();
        if (IsSkipped() || HasFatalFailure()) return;
        server_ = connect();
        client_ = connect();
        status_.node = "alpha";
        status_.cluster = "test";
    }

    void TearDown() override {
        object_.reset();
        client_.reset();
        server_.reset();
        PrivateBusTest::TearDown();
    }

    void publish() {
        object_ = std::make_unique<ManagerObject>(
            std::make_shared<const Status>(status_),
            [this](const BusRequest& request, ManagerObject::Reply reply) {
                requests_.push_back(request);
                replies_.push_back(std::move(reply));
            });
        std::string error;
        ASSERT_GE(object_->publish(server_.get(), &error), 0) << error;
        ASSERT_GE(sd_bus_request_name(server_.get(), kBusName, 0), 0);
    }

    static int on_answer(sd_bus_message* m, void* userdata, sd_bus_error*) {
        auto* a = static_cast<Answer*>(userdata);
        a->arrived = true;
        if (const sd_bus_error* e = sd_bus_message_get_error(m)) {
            a->error = e->name;
            a->text = e->message ? e->message : "";
        } else if (const char* s = nullptr;
                   std::strcmp(sd_bus_message_get_signature(m, 1), "v") == 0 && sd_bus_message_read(m, "v", "s", &s) > 0) {
            a->text = s;  // a property
        }
        return 0;
    }

    // Calls `member` on the Manager object, with what `append` adds; `answer` fills in later.
    template <typename Append>
    void call(const char* interface, const char* member, Answer* answer, Append append) {
        sd_bus_message* m = nullptr;
        ASSERT_GE(sd_bus_message_new_method_call(client_.get(), &m, kBusName, kManagerPath, interface, member), 0);
        BusMessagePtr owned(m);
        ASSERT_GE(append(m), 0);
        ASSERT_GE(sd_bus_call_async(client_.get(), nullptr, m, on_answer, answer, 5 * 1000 * 1000), 0);
    }

    BusPtr server_;
    BusPtr client_;
    Status status_;
    std::unique_ptr<ManagerObject> object_;
    std::vector<BusRequest> requests_;
    std::vector<ManagerObject::Reply> replies_;
};

TEST_F(ManagerObjectTest, GetStatusThatCannotBeEncodedIsTheCallersErrorAndTheObjectKeepsServing) {
    status_.cluster = "\xff\xfe";  // not UTF-8: the JSON encoder throws
    publish();
    Answer status, property;
    call(kManagerInterface, "GetStatus", &status, [](sd_bus_message*) { return 0; });
    ASSERT_TRUE(run_until([&] { return status.arrived; }));
    EXPECT_EQ(status.error, kErrorFailed);
    EXPECT_NE(status.text.find("UTF-8"), std::string::npos) << status.text;
    call("org.freedesktop.DBus.Properties", "Get", &property,
         [](sd_bus_message* m) { return sd_bus_message_append(m, "ss", kManagerInterface, "NodeName"); });
    ASSERT_TRUE(run_until([&] { return property.arrived; }));
    EXPECT_EQ(property.error, "");
    EXPECT_EQ(property.text, "alpha");
}

TEST_F(ManagerObjectTest, AMutatingCallIsAnsweredWhenTheHandlerReplies) {
    publish();
    Answer standby;
    call(kManagerInterface, "SetStandby", &standby,
         [](sd_bus_message* m) { return sd_bus_message_append(m, "b", 1); });
    ASSERT_TRUE(run_until([&] { return !replies_.empty(); }));  // the caller (root, or us) is privileged
    ASSERT_EQ(requests_.size(), 1u);
    EXPECT_EQ(requests_[0].kind, BusRequest::Kind::SetStandby);
    EXPECT_TRUE(requests_[0].standby);
    EXPECT_FALSE(run_until([&] { return standby.arrived; }, 200 * kUsecPerMsec));  // no answer yet
    replies_[0](std::string("freehad is still starting"));
    ASSERT_TRUE(run_until([&] { return standby.arrived; }));
    EXPECT_EQ(standby.error, kErrorFailed);
    EXPECT_EQ(standby.text, "freehad is still starting");
}

TEST_F(ManagerObjectTest, AReplyAfterTheObjectIsGoneStillReachesTheCaller) {
    publish();
    Answer stop;
    call(kManagerInterface, "Stop", &stop, [](sd_bus_message*) { return 0; });
    ASSERT_TRUE(run_until([&] { return !replies_.empty(); }));
    object_.reset();  // as when the bus connection is replaced while the daemon works on the request
    replies_[0](std::nullopt);
    ASSERT_TRUE(run_until([&] { return stop.arrived; }));
    EXPECT_EQ(stop.error, "");
}

// The Addresses property, read by a client: (address, device, up, foreign MAC, conflicts) each.
struct AddressesAnswer {
    bool arrived = false;
    std::string error;
    std::vector<AddressStatus> addresses;
};

int on_addresses(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* a = static_cast<AddressesAnswer*>(userdata);
    a->arrived = true;
    if (const sd_bus_error* e = sd_bus_message_get_error(m)) {
        a->error = e->name;
        return 0;
    }
    if (sd_bus_message_enter_container(m, 'v', "a(ssbst)") <= 0 || sd_bus_message_enter_container(m, 'a', "(ssbst)") <= 0) {
        a->error = std::string("signature ") + sd_bus_message_get_signature(m, 1);
        return 0;
    }
    const char *address = nullptr, *device = nullptr, *mac = nullptr;
    int up = 0;
    std::uint64_t conflicts = 0;
    while (sd_bus_message_read(m, "(ssbst)", &address, &device, &up, &mac, &conflicts) > 0)
        a->addresses.push_back({address, device, up != 0, mac, conflicts});
    return 0;
}

// The names of the properties a PropertiesChanged signal carries.
int on_properties_changed(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* names = static_cast<std::vector<std::string>*>(userdata);
    const char* interface = nullptr;
    if (sd_bus_message_read(m, "s", &interface) < 0 || sd_bus_message_enter_container(m, 'a', "{sv}") < 0) return 0;
    while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
        const char* name = nullptr;
        if (sd_bus_message_read(m, "s", &name) < 0 || sd_bus_message_skip(m, "v") < 0) return 0;
        names->emplace_back(name);
        sd_bus_message_exit_container(m);
    }
    return 0;
}

TEST_F(ManagerObjectTest, AddressesShowEachFloatingAddressAndSignalTheirChanges) {
    status_.addresses = {{"192.0.2.10/24", "eth0", true, "", 0}, {"2001:db8::10/64", "eth1", false, "52:54:00:12:34:56", 3}};
    publish();
    auto get = [&] {
        AddressesAnswer answer;
        EXPECT_GE(sd_bus_call_method_async(client_.get(), nullptr, kBusName, kManagerPath, "org.freedesktop.DBus.Properties",
                                           "Get", on_addresses, &answer, "ss", kManagerInterface, "Addresses"),
                  0);
        EXPECT_TRUE(run_until([&] { return answer.arrived; }));
        EXPECT_EQ(answer.error, "");
        return answer.addresses;
    };
    EXPECT_EQ(get(), status_.addresses);

    std::vector<std::string> changed;
    ASSERT_GE(sd_bus_match_signal(client_.get(), nullptr, nullptr, kManagerPath, "org.freedesktop.DBus.Properties",
                                  "PropertiesChanged", on_properties_changed, &changed),
              0);
    Answer sync;  // a round trip, so that the match is in place before the flush
    call("org.freedesktop.DBus.Properties", "Get", &sync,
         [](sd_bus_message* m) { return sd_bus_message_append(m, "ss", kManagerInterface, "NodeName"); });
    ASSERT_TRUE(run_until([&] { return sync.arrived; }));

    Status later = status_;
    later.addresses[0].foreign_mac = "aa:bb:cc:dd:ee:ff";
    later.addresses[0].conflicts = 1;
    object_->flush(std::make_shared<const Status>(later));
    ASSERT_TRUE(run_until([&] { return !changed.empty(); }));
    EXPECT_EQ(changed, std::vector<std::string>{"Addresses"});
    EXPECT_EQ(get(), later.addresses);

    changed.clear();
    object_->flush(std::make_shared<const Status>(later));  // nothing new: no signal
    EXPECT_FALSE(run_until([&] { return !changed.empty(); }, 200 * kUsecPerMsec));
}


// A property of any type, read as the text busctl would print for a basic type.
struct PropertyAnswer {
    bool arrived = false;
    std::string error;
    std::string value;
};

int on_property(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* a = static_cast<PropertyAnswer*>(userdata);
    a->arrived = true;
    if (const sd_bus_error* e = sd_bus_message_get_error(m)) {
        a->error = e->name;
        return 0;
    }
    const char* contents = nullptr;
    char type = 0;
    if (sd_bus_message_peek_type(m, &type, &contents) <= 0 || sd_bus_message_enter_container(m, 'v', contents) <= 0) {
        a->error = "not a variant";
        return 0;
    }
    std::string sig(contents);
    if (sig == "s") {
        const char* v = nullptr;
        sd_bus_message_read(m, "s", &v);
        a->value = std::string("s:") + v;
    } else if (sig == "b") {
        int v = 0;
        sd_bus_message_read(m, "b", &v);
        a->value = std::string("b:") + (v ? "true" : "false");
    } else if (sig == "y") {
        std::uint8_t v = 0;
        sd_bus_message_read(m, "y", &v);
        a->value = "y:" + std::to_string(v);
    } else if (sig == "t") {
        std::uint64_t v = 0;
        sd_bus_message_read(m, "t", &v);
        a->value = "t:" + std::to_string(v);
    } else if (sig == "a{st}") {  // "name=value name=value"
        a->value = "a{st}:";
        const char* name = nullptr;
        std::uint64_t v = 0;
        if (sd_bus_message_enter_container(m, 'a', "{st}") > 0)
            while (sd_bus_message_read(m, "{st}", &name, &v) > 0)
                a->value += std::string(a->value.back() == ':' ? "" : " ") + name + "=" + std::to_string(v);
    } else {
        a->value = "signature " + sig;
    }
    return 0;
}

TEST_F(ManagerObjectTest, MaintenanceModeAndReleasesAreShownAndSetMaintenanceIsHandedOn) {
    status_.version = "0.2.0";
    status_.wire_version = 3;
    NodeStatus self, old;
    self.name = "alpha";
    self.self = true;
    self.version = "0.2.0";
    self.wire_version = 3;
    old.name = "bravo";
    old.wire_version = 2;  // a release before 0.2: no version
    status_.nodes = {self, old};
    publish();
    auto get = [&](const std::string& path, const char* interface, const char* name) {
        PropertyAnswer answer;
        EXPECT_GE(sd_bus_call_method_async(client_.get(), nullptr, kBusName, path.c_str(),
                                           "org.freedesktop.DBus.Properties", "Get", on_property, &answer, "ss",
                                           interface, name),
                  0);
        EXPECT_TRUE(run_until([&] { return answer.arrived; }));
        EXPECT_EQ(answer.error, "") << name;
        return answer.value;
    };
    EXPECT_EQ(get(kManagerPath, kManagerInterface, "Maintenance"), "b:false");
    EXPECT_EQ(get(kManagerPath, kManagerInterface, "MaintenanceSinceUSec"), "t:0");
    EXPECT_EQ(get(kManagerPath, kManagerInterface, "Version"), "s:0.2.0");
    EXPECT_EQ(get(kManagerPath, kManagerInterface, "WireVersion"), "y:3");
    EXPECT_EQ(get(node_object_path("alpha"), kNodeInterface, "Version"), "s:0.2.0");
    EXPECT_EQ(get(node_object_path("bravo"), kNodeInterface, "Version"), "s:");
    EXPECT_EQ(get(node_object_path("bravo"), kNodeInterface, "WireVersion"), "y:2");
    EXPECT_EQ(get(node_object_path("bravo"), kNodeInterface, "Maintenance"), "b:false");
    EXPECT_EQ(get(node_object_path("bravo"), kNodeInterface, "Left"), "b:false");

    Answer on;
    call(kManagerInterface, "SetMaintenance", &on, [](sd_bus_message* m) { return sd_bus_message_append(m, "b", 1); });
    ASSERT_TRUE(run_until([&] { return !replies_.empty(); }));
    ASSERT_EQ(requests_.size(), 1u);
    EXPECT_EQ(requests_[0].kind, BusRequest::Kind::SetMaintenance);
    EXPECT_TRUE(requests_[0].maintenance);
    replies_[0](std::string("maintenance on refused: maintenance mode is already on"));
    ASSERT_TRUE(run_until([&] { return on.arrived; }));
    EXPECT_EQ(on.error, kErrorFailed);
    EXPECT_EQ(on.text, "maintenance on refused: maintenance mode is already on");

    std::vector<std::string> changed;
    ASSERT_GE(sd_bus_match_signal(client_.get(), nullptr, nullptr, kManagerPath, "org.freedesktop.DBus.Properties",
                                  "PropertiesChanged", on_properties_changed, &changed),
              0);
    get(kManagerPath, kManagerInterface, "NodeName");  // a round trip: the match is in place
    Status later = status_;
    later.maintenance = true;
    later.maintenance_since_realtime_usec = 1700000000000000ULL;
    later.nodes[0].maintenance = true;
    object_->flush(std::make_shared<const Status>(later));
    ASSERT_TRUE(run_until([&] { return !changed.empty(); }));
    EXPECT_EQ(changed, (std::vector<std::string>{"Maintenance", "MaintenanceSinceUSec"}));
    EXPECT_EQ(get(kManagerPath, kManagerInterface, "Maintenance"), "b:true");
    EXPECT_EQ(get(node_object_path("alpha"), kNodeInterface, "Maintenance"), "b:true");
}

TEST_F(ManagerObjectTest, TheEtcdLinkIsShownAndANewFailureSignalled) {
    publish();
    auto get = [&](const char* name) {
        PropertyAnswer answer;
        EXPECT_GE(sd_bus_call_method_async(client_.get(), nullptr, kBusName, kManagerPath,
                                           "org.freedesktop.DBus.Properties", "Get", on_property, &answer, "ss",
                                           kManagerInterface, name),
                  0);
        EXPECT_TRUE(run_until([&] { return answer.arrived; }));
        EXPECT_EQ(answer.error, "") << name;
        return answer.value;
    };
    // The heartbeats: empty.
    EXPECT_EQ(get("EtcdEndpoint"), "s:");
    EXPECT_EQ(get("EtcdCounters"), "a{st}:");
    EXPECT_EQ(get("EtcdLeaseRemainingUSec"), "t:0");

    std::vector<std::string> changed;
    ASSERT_GE(sd_bus_match_signal(client_.get(), nullptr, nullptr, kManagerPath, "org.freedesktop.DBus.Properties",
                                  "PropertiesChanged", on_properties_changed, &changed),
              0);
    get("NodeName");  // a round trip: the match is in place
    EtcdLinkStatus e;
    e.endpoint = "http://192.0.2.2:2379";
    e.endpoint_count = 3;
    e.lease_id = 7;
    e.lease_remaining = 900 * kUsecPerMsec;
    e.calls = 40;
    Status later = status_;
    later.etcd = e;
    object_->flush(std::make_shared<const Status>(later));
    ASSERT_TRUE(run_until([&] { return !changed.empty(); }));
    EXPECT_EQ(changed, std::vector<std::string>{"EtcdEndpoint"});
    EXPECT_EQ(get("EtcdEndpoint"), "s:http://192.0.2.2:2379");
    EXPECT_EQ(get("EtcdLeaseRemainingUSec"), "t:900000");
    EXPECT_EQ(get("EtcdCounters"),
              "a{st}:calls=40 call_failures=0 watch_failures=0 endpoint_switches=0 leases_lost=0");

    changed.clear();
    later.etcd->calls = 41;  // a renewal: read it, no signal
    object_->flush(std::make_shared<const Status>(later));
    EXPECT_FALSE(run_until([&] { return !changed.empty(); }, 200 * kUsecPerMsec));
    later.etcd->call_failures = 1;
    later.etcd->last_failure = "keepalive on http://192.0.2.1:2379: Connection refused";
    object_->flush(std::make_shared<const Status>(later));
    ASSERT_TRUE(run_until([&] { return !changed.empty(); }));
    EXPECT_EQ(changed, std::vector<std::string>{"EtcdLastFailure"});
    EXPECT_EQ(get("EtcdLastFailure"), "s:keepalive on http://192.0.2.1:2379: Connection refused");
}

// The Links property: one (channel, received, lost, recent loss ratio, lossy) per channel of the node.
struct LinksAnswer {
    bool arrived = false;
    std::string error;
    std::vector<std::string> links;  // "name received lost ratio lossy"
};

int on_links(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* a = static_cast<LinksAnswer*>(userdata);
    a->arrived = true;
    if (const sd_bus_error* e = sd_bus_message_get_error(m)) {
        a->error = e->name;
        return 0;
    }
    if (sd_bus_message_enter_container(m, 'v', "a(sttdb)") <= 0 || sd_bus_message_enter_container(m, 'a', "(sttdb)") <= 0) {
        a->error = "not a(sttdb)";
        return 0;
    }
    const char* name = nullptr;
    std::uint64_t received = 0, lost = 0;
    double ratio = 0;
    int lossy = 0;
    while (sd_bus_message_read(m, "(sttdb)", &name, &received, &lost, &ratio, &lossy) > 0)
        a->links.push_back(std::string(name) + " " + std::to_string(received) + " " + std::to_string(lost) + " " +
                           std::to_string(ratio) + " " + (lossy ? "lossy" : "fine"));
    return 0;
}

TEST_F(ManagerObjectTest, LinksShowEachChannelsCountsOfANode) {
    status_.channels = {"broadcast 10.0.0.1", "unicast 10.1.0.1 10.1.0.2"};
    NodeStatus bravo, charlie;
    bravo.name = "bravo";
    bravo.links = {LinkStatus{500, 0, 64, 0, false}, LinkStatus{375, 125, 64, 16, true}};
    charlie.name = "charlie";
    charlie.links.resize(2);  // nothing judged yet: ratio 0
    status_.nodes = {bravo, charlie};
    publish();
    auto get = [&](const std::string& node) {
        LinksAnswer answer;
        EXPECT_GE(sd_bus_call_method_async(client_.get(), nullptr, kBusName, node_object_path(node).c_str(),
                                           "org.freedesktop.DBus.Properties", "Get", on_links, &answer, "ss",
                                           kNodeInterface, "Links"),
                  0);
        EXPECT_TRUE(run_until([&] { return answer.arrived; }));
        EXPECT_EQ(answer.error, "");
        return answer.links;
    };
    EXPECT_EQ(get("bravo"), (std::vector<std::string>{"broadcast 10.0.0.1 500 0 0.000000 fine",
                                                      "unicast 10.1.0.1 10.1.0.2 375 125 0.250000 lossy"}));
    EXPECT_EQ(get("charlie"), (std::vector<std::string>{"broadcast 10.0.0.1 0 0 0.000000 fine",
                                                        "unicast 10.1.0.1 10.1.0.2 0 0 0.000000 fine"}));
}

// One object per service group (issue 20), beside the node's.
int on_object_signal(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* paths = static_cast<std::vector<std::string>*>(userdata);
    const char* path = nullptr;
    if (sd_bus_message_read(m, "o", &path) >= 0) paths->push_back(std::string(sd_bus_message_get_member(m)) + " " + path);
    return 0;
}

TEST_F(ManagerObjectTest, EachGroupHasAnObjectShowingItsStatusAndTakingItsSwitchoverAndClearError) {
    GroupStatus main_group, web;
    main_group.name = "default";
    main_group.state = NodeState::Running;
    main_group.phase = "running";
    main_group.active_node = "alpha";
    main_group.term = 7;
    main_group.lease_remaining = Usec(750000);
    main_group.placement = PlacementPolicy::Rendezvous;
    main_group.nodes = {{"alpha", NodeState::Running, 7, false, "", true}, {"bravo", NodeState::Standby, 7, false, "", false}};
    web.name = "web-1";  // not a valid path element as it is: escaped
    web.state = NodeState::Errored;
    web.phase = "errored";
    web.active_node = "bravo";
    web.term = 3;
    web.errored = true;
    web.last_error = "monitorhasrv exited with status 1";
    web.unavailable = "HooksDirectory=/etc/freeha/web: no such directory";
    web.nodes = {{"alpha", NodeState::Errored, 3, true, "", true}, {"bravo", NodeState::Running, 3, false, "", false}};
    status_.groups = {main_group, web};
    publish();
    EXPECT_EQ(group_object_path("web-1"), "/org/freeha1/group/web_2d1");
    auto get = [&](const std::string& group, const char* name) {
        PropertyAnswer answer;
        EXPECT_GE(sd_bus_call_method_async(client_.get(), nullptr, kBusName, group_object_path(group).c_str(),
                                           "org.freedesktop.DBus.Properties", "Get", on_property, &answer, "ss",
                                           kGroupInterface, name),
                  0);
        EXPECT_TRUE(run_until([&] { return answer.arrived; }));
        return answer.error.empty() ? answer.value : answer.error;
    };
    EXPECT_EQ(get("default", "Name"), "s:default");
    EXPECT_EQ(get("default", "State"), "s:RUNNING");
    EXPECT_EQ(get("default", "Phase"), "s:running");
    EXPECT_EQ(get("default", "ActiveNode"), "s:alpha");
    EXPECT_EQ(get("default", "Term"), "t:7");
    EXPECT_EQ(get("default", "LeaseRemainingUSec"), "t:750000");
    EXPECT_EQ(get("default", "Placement"), "s:rendezvous");
    EXPECT_EQ(get("default", "Nodes"), "signature a(sstb)");
    EXPECT_EQ(get("web-1", "Name"), "s:web-1");
    EXPECT_EQ(get("web-1", "State"), "s:ERRORED");
    EXPECT_EQ(get("web-1", "ActiveNode"), "s:bravo");
    EXPECT_EQ(get("web-1", "LeaseRemainingUSec"), "t:0");  // no claim here
    EXPECT_EQ(get("web-1", "Errored"), "b:true");
    EXPECT_EQ(get("web-1", "LastError"), "s:monitorhasrv exited with status 1");
    EXPECT_EQ(get("web-1", "HandoverTo"), "s:");
    EXPECT_EQ(get("web-1", "Unavailable"), "s:HooksDirectory=/etc/freeha/web: no such directory");
    EXPECT_EQ(get("default", "Unavailable"), "s:");
    EXPECT_EQ(get("mail", "Name"), SD_BUS_ERROR_UNKNOWN_OBJECT);

    auto call_group = [&](const std::string& group, const char* member, const char* node, Answer* answer) {
        sd_bus_message* m = nullptr;
        ASSERT_GE(sd_bus_message_new_method_call(client_.get(), &m, kBusName, group_object_path(group).c_str(),
                                                 kGroupInterface, member),
                  0);
        BusMessagePtr owned(m);
        if (node != nullptr) {
            ASSERT_GE(sd_bus_message_append(m, "s", node), 0);
        }
        ASSERT_GE(sd_bus_call_async(client_.get(), nullptr, m, on_answer, answer, 5 * 1000 * 1000), 0);
    };
    Answer switchover, clear, unknown;
    call_group("web-1", "Switchover", "alpha", &switchover);
    ASSERT_TRUE(run_until([&] { return replies_.size() == 1; }));
    EXPECT_EQ(requests_[0].kind, BusRequest::Kind::Switchover);
    EXPECT_EQ(requests_[0].group, "web-1");
    EXPECT_EQ(requests_[0].node, "alpha");
    replies_[0](std::string("switchover of group web-1 refused: this node does not run the services"));
    ASSERT_TRUE(run_until([&] { return switchover.arrived; }));
    EXPECT_EQ(switchover.error, kErrorFailed);
    EXPECT_EQ(switchover.text, "switchover of group web-1 refused: this node does not run the services");
    call_group("web-1", "ClearError", nullptr, &clear);
    ASSERT_TRUE(run_until([&] { return replies_.size() == 2; }));
    EXPECT_EQ(requests_[1].kind, BusRequest::Kind::ClearError);
    EXPECT_EQ(requests_[1].group, "web-1");
    replies_[1](std::nullopt);
    ASSERT_TRUE(run_until([&] { return clear.arrived; }));
    EXPECT_EQ(clear.error, "");
    call_group("mail", "ClearError", nullptr, &unknown);
    ASSERT_TRUE(run_until([&] { return unknown.arrived; }));
    EXPECT_EQ(unknown.error, SD_BUS_ERROR_UNKNOWN_OBJECT);
    EXPECT_EQ(requests_.size(), 2u) << "no request for a group that does not exist";
    // The Manager's own methods still speak for the node: no group.
    Answer node_clear;
    call(kManagerInterface, "ClearError", &node_clear, [](sd_bus_message*) { return 0; });
    ASSERT_TRUE(run_until([&] { return replies_.size() == 3; }));
    EXPECT_EQ(requests_[2].group, "");

    std::vector<std::string> changed, objects;
    ASSERT_GE(sd_bus_match_signal(client_.get(), nullptr, nullptr, group_object_path("web-1").c_str(),
                                  "org.freedesktop.DBus.Properties", "PropertiesChanged", on_properties_changed,
                                  &changed),
              0);
    ASSERT_GE(sd_bus_match_signal(client_.get(), nullptr, nullptr, kManagerPath, "org.freedesktop.DBus.ObjectManager",
                                  nullptr, on_object_signal, &objects),
              0);
    get("default", "Name");  // a round trip: the matches are in place
    Status later = status_;
    later.groups[1].state = NodeState::Standby;
    later.groups[1].phase = "standby";
    later.groups[1].errored = false;
    later.groups[1].last_error = "";
    later.groups[1].unavailable = "";
    later.groups[1].nodes[0].state = NodeState::Standby;
    later.groups[1].nodes[0].errored = false;
    later.groups[0].lease_remaining = Usec(500000);  // runs down on its own: no signal
    GroupStatus mail = later.groups[1];
    mail.name = "mail";
    later.groups.push_back(mail);
    object_->flush(std::make_shared<const Status>(later));
    ASSERT_TRUE(run_until([&] { return !changed.empty() && !objects.empty(); }));
    EXPECT_EQ(changed, (std::vector<std::string>{"State", "Phase", "Errored", "LastError", "Unavailable", "Nodes"}));
    EXPECT_EQ(objects, std::vector<std::string>{"InterfacesAdded /org/freeha1/group/mail"});
    EXPECT_EQ(get("mail", "State"), "s:STANDBY");
    EXPECT_EQ(get("default", "LeaseRemainingUSec"), "t:500000");

    objects.clear();
    Status fewer = later;
    fewer.groups.pop_back();
    object_->flush(std::make_shared<const Status>(fewer));
    ASSERT_TRUE(run_until([&] { return !objects.empty(); }));
    EXPECT_EQ(objects, std::vector<std::string>{"InterfacesRemoved /org/freeha1/group/mail"});
    EXPECT_EQ(get("mail", "Name"), SD_BUS_ERROR_UNKNOWN_OBJECT);
}

}  // namespace
