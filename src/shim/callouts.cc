// Kea-facing half of the hook: callouts, command handlers and registration.
//
// Kea finds version/load/unload/multi_threading_compatible by symbol name, and
// a Rust cdylib hides C++ symbols, so those four live in src/kea/exports.rs. Everything
// else is registered from load() through shim_register(), which keeps the
// packet path one hop long: Kea -> C++ callout -> bmc_on_lease().
//
// This file owns no logic: it copies plain data out of Kea's objects and
// forwards it. Every function catches every exception, because an exception
// escaping into Rust (or a callout failing) would hurt Kea.

// Kea 3.0's headers refuse to compile unless config.h comes first
// (asiolink/crypto_tls.h reads its TLS backend from it); harmless before.
#include <config.h>

#include <bmc_discovery.h>
#include <bmc_discovery_message_ids.h>

#include <cc/command_interpreter.h>
#include <cc/data.h>
#include <dhcp/dhcp4.h>
#include <dhcp/dhcp6.h>
#include <dhcp/option.h>
#include <dhcp/option4_client_fqdn.h>
#include <dhcp/option6_client_fqdn.h>
#include <dhcp/option_vendor_class.h>
#include <dhcp/pkt4.h>
#include <dhcp/pkt6.h>
// srv_config.h and cfgmgr.h need dhcpsrv/cfg_globals.h, which Debian's
// kea-dev 2.2 lacks; see include/kea-compat/ for what stands in and why the
// shim must not call getters that read globals by index.
#include <dhcpsrv/cfg_shared_networks.h>
#include <dhcpsrv/cfg_subnets4.h>
#include <dhcpsrv/cfg_subnets6.h>
#include <dhcpsrv/cfgmgr.h>
#include <dhcpsrv/lease.h>
#include <dhcpsrv/lease_mgr.h>
#include <dhcpsrv/lease_mgr_factory.h>
#include <dhcpsrv/timer_mgr.h>
#include <stats/stats_mgr.h>
#include <dhcpsrv/srv_config.h>
#include <hooks/hooks.h>

// build.rs parsed KEA_HOOKS_VERSION out of hooks.h to choose libraries; the
// compiler checks that it read the same header it compiles against.
static_assert(KEA_HOOKS_VERSION == BMC_KEA_HOOKS_VERSION,
              "build.rs detected another Kea than the headers the shim includes");

#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <string>

using isc::data::ConstElementPtr;
using isc::data::Element;
using isc::data::ElementPtr;
using isc::hooks::CalloutHandle;
using isc::hooks::LibraryHandle;

namespace {

// One of the shim's own messages with the exception's text as its %1. `id`
// is a macro of bmc_discovery_message_ids.h: the ID and its severity.
void log_what(const char* id, int severity, const char* what) {
    const bmc_str arg = {what, std::strlen(what)};
    shim_log(id, severity, &arg, 1);
}

// A staged hooks library entry (HookLibInfo) is a std::pair<name, parameters>
// up to Kea 2.6 and a struct {libname_, parameters_, cfgname_} from 3.0;
// overload resolution picks whichever member exists. libname_ is the
// resolved path, which is what the dynamic loader reports for this library.
template <typename Lib>
auto hook_lib_name(const Lib& lib) -> decltype(lib.first) {
    return lib.first;
}
template <typename Lib>
auto hook_lib_name(const Lib& lib) -> decltype(lib.libname_) {
    return lib.libname_;
}
template <typename Lib>
auto hook_lib_parameters(const Lib& lib) -> decltype(lib.second) {
    return lib.second;
}
template <typename Lib>
auto hook_lib_parameters(const Lib& lib) -> decltype(lib.parameters_) {
    return lib.parameters_;
}

uint64_t monotonic_ns() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

// Copies at most `cap` bytes; returns the length copied and sets `flag` in
// `truncated` when the source was longer.
template <typename It>
uint8_t copy_bounded(It first, It last, uint8_t* dst, size_t cap, uint8_t flag,
                     uint8_t& truncated) {
    const size_t len = static_cast<size_t>(std::distance(first, last));
    const size_t n = std::min(len, cap);
    std::copy(first, first + n, dst);
    if (len > cap) {
        truncated |= flag;
    }
    return static_cast<uint8_t>(n);
}

void copy_hostname(const isc::dhcp::Lease4& lease, const isc::dhcp::Pkt4Ptr& query,
                   bmc_lease_event& ev) {
    if (!lease.hostname_.empty()) {
        ev.hostname_len = copy_bounded(lease.hostname_.begin(), lease.hostname_.end(), ev.hostname,
                                       BMC_HOSTNAME_MAX, BMC_TRUNC_HOSTNAME, ev.truncated);
        return;
    }
    if (!query) {
        return;
    }
    // getData() returns a reference: no copy, no allocation on this path.
    if (auto opt12 = query->getOption(isc::dhcp::DHO_HOST_NAME)) {
        const auto& data = opt12->getData();
        ev.hostname_len = copy_bounded(data.begin(), data.end(), ev.hostname, BMC_HOSTNAME_MAX,
                                       BMC_TRUNC_HOSTNAME, ev.truncated);
        return;
    }
    // Option 81 is rare for BMCs; its domain name is only available as a string.
    auto fqdn = boost::dynamic_pointer_cast<isc::dhcp::Option4ClientFqdn>(
        query->getOption(isc::dhcp::DHO_FQDN));
    if (fqdn) {
        const std::string name = fqdn->getDomainName();
        ev.hostname_len = copy_bounded(name.begin(), name.end(), ev.hostname, BMC_HOSTNAME_MAX,
                                       BMC_TRUNC_HOSTNAME, ev.truncated);
    }
}

// What every lease has (isc::dhcp::Lease): subnet, lifetime, time of the
// last transaction, hardware address (for DHCPv6: what Kea's mac-sources
// found, often none).
void copy_lease_common(const isc::dhcp::Lease& lease, bmc_lease_event& ev) {
    ev.subnet_id = lease.subnet_id_;
    ev.valid_lifetime = lease.valid_lft_;
    ev.cltt = static_cast<int64_t>(lease.cltt_);
    if (lease.hwaddr_) {
        const auto& hw = lease.hwaddr_->hwaddr_;
        ev.htype = lease.hwaddr_->htype_;
        uint8_t ignored = 0;
        ev.hwaddr_len = copy_bounded(hw.begin(), hw.end(), ev.hwaddr, BMC_HWADDR_MAX, 0, ignored);
    }
}

// The lease's own fields (address, subnet, hardware address, client id).
void copy_lease(const isc::dhcp::Lease4& lease, bmc_lease_event& ev) {
    ev.ipv4 = lease.addr_.toUint32();
    copy_lease_common(lease, ev);
    if (lease.client_id_) {
        const auto& id = lease.client_id_->getClientId();
        ev.client_id_len = copy_bounded(id.begin(), id.end(), ev.client_id, BMC_CLIENT_ID_MAX,
                                        BMC_TRUNC_CLIENT_ID, ev.truncated);
    }
}

// The callout arguments' names, made once: getArgument takes a
// std::string, and building one from a literal on every packet is a cost
// callgrind shows (benches/kea_throughput.rs, BENCH_MODE=instructions).
const std::string ARG_FAKE_ALLOCATION = "fake_allocation";
const std::string ARG_LEASE4 = "lease4";
const std::string ARG_QUERY4 = "query4";

int forward_lease(CalloutHandle& handle, uint8_t kind) {
    try {
        const uint64_t start_ns = monotonic_ns();
        // An earlier callout decided to drop or skip: not a lease that happens.
        const auto status = handle.getStatus();
        if (status == CalloutHandle::NEXT_STEP_DROP || status == CalloutHandle::NEXT_STEP_SKIP) {
            return 0;
        }
        if (kind == BMC_LEASE_SELECT) {
            // DHCPDISCOVER runs lease4_select with fake_allocation: no lease is
            // handed out, so there is nothing to discover yet. Half of all
            // calls end here, before the event is even zeroed.
            bool fake_allocation = false;
            handle.getArgument(ARG_FAKE_ALLOCATION, fake_allocation);
            if (fake_allocation) {
                return 0;
            }
        }
        isc::dhcp::Lease4Ptr lease;
        handle.getArgument(ARG_LEASE4, lease);
        if (!lease) {
            return 0;
        }
        isc::dhcp::Pkt4Ptr query;
        handle.getArgument(ARG_QUERY4, query);
        // Kea also runs lease4_renew for the DHCPDISCOVER of a client that
        // already holds a lease (it gets no fake_allocation argument there):
        // only the DHCPREQUEST that follows extends the lease.
        if (kind == BMC_LEASE_RENEW && query && query->getType() != isc::dhcp::DHCPREQUEST) {
            return 0;
        }

        bmc_lease_event ev = {};
        ev.start_ns = start_ns;
        ev.kind = kind;
        copy_lease(*lease, ev);
        copy_hostname(*lease, query, ev);
        if (query) {
            if (auto opt60 = query->getOption(isc::dhcp::DHO_VENDOR_CLASS_IDENTIFIER)) {
                const auto& data = opt60->getData();
                ev.vendor_class_len =
                    copy_bounded(data.begin(), data.end(), ev.vendor_class, BMC_VENDOR_CLASS_MAX,
                                 BMC_TRUNC_VENDOR_CLASS, ev.truncated);
            }
        }
        bmc_on_lease(&ev);
    } catch (const std::exception& ex) {
        log_what(BMC_DISCOVERY_LEASE_CALLOUT_FAILED, ex.what());
    } catch (...) {
        log_what(BMC_DISCOVERY_LEASE_CALLOUT_FAILED, "unknown exception");
    }
    // An observer never changes what Kea does with the packet.
    return 0;
}

int lease4_select_callout(CalloutHandle& handle) { return forward_lease(handle, BMC_LEASE_SELECT); }

int lease4_renew_callout(CalloutHandle& handle) { return forward_lease(handle, BMC_LEASE_RENEW); }

// After every (re)configuration, once the new configuration is live: hand the
// subnets (with the ids Kea assigned) to Rust, which precompiles its filter
// table so the packet path never has to look at Kea's JSON.
int dhcp4_srv_configured_callout(CalloutHandle& handle) {
    try {
        isc::dhcp::SrvConfigPtr config;
        handle.getArgument("server_config", config);
        ElementPtr subnets = Element::createMap();
        if (config) {
            subnets->set("subnet4", config->getCfgSubnets4()->toElement());
            subnets->set("shared-networks", config->getCfgSharedNetworks4()->toElement());
        }
        const std::string json = subnets->str();
        bmc_on_configured(json.data(), json.size());
    } catch (const std::exception& ex) {
        log_what(BMC_DISCOVERY_SUBNETS_READ_FAILED, ex.what());
    }
    return 0;
}


// ---- DHCPv6 ---------------------------------------------------------------

// IOAddress keeps its boost address private and hands out its bytes only as
// a new heap vector (toBytes()). An explicit instantiation may name a private
// member ([temp.explicit]: access is not checked there), which gives the
// packet path the 16 bytes without an allocation. The member has had this
// name and type in every Kea the build supports (2.2 to 3.2).
template <typename Tag, typename Tag::type Member>
struct Expose {
    friend typename Tag::type member(Tag) { return Member; }
};
struct IOAddressAsio {
    typedef boost::asio::ip::address isc::asiolink::IOAddress::*type;
    friend type member(IOAddressAsio);
};
template struct Expose<IOAddressAsio, &isc::asiolink::IOAddress::asio_address_>;

void copy_ipv6(const isc::asiolink::IOAddress& addr, uint8_t (&out)[16]) {
    const boost::asio::ip::address& a = addr.*member(IOAddressAsio());
    if (a.is_v6()) {
        const auto bytes = a.to_v6().to_bytes();
        std::copy(bytes.begin(), bytes.end(), out);
    }
}

// An option of the query without the copy Pkt::getOption() makes: Kea turns
// on "copy retrieved options" around the lease callouts, and then every
// getOption() clones the option on the heap. Reading the collection directly
// only reads.
isc::dhcp::OptionPtr peek_option(const isc::dhcp::Pkt6& query, uint16_t type) {
    const auto it = query.options_.find(type);
    return it == query.options_.end() ? isc::dhcp::OptionPtr() : it->second;
}

void copy_lease6(const isc::dhcp::Lease6& lease, bmc_lease_event& ev) {
    ev.family = BMC_FAMILY_V6;
    copy_ipv6(lease.addr_, ev.ipv6);
    // No hardware address is common here (a DUID-EN or DUID-UUID client
    // reached without relay option 79).
    copy_lease_common(lease, ev);
    if (lease.duid_) {
        const auto& id = lease.duid_->getDuid();
        ev.client_id_len = copy_bounded(id.begin(), id.end(), ev.client_id, BMC_CLIENT_ID_MAX,
                                        BMC_TRUNC_CLIENT_ID, ev.truncated);
    }
    if (!lease.hostname_.empty()) {
        ev.hostname_len = copy_bounded(lease.hostname_.begin(), lease.hostname_.end(), ev.hostname,
                                       BMC_HOSTNAME_MAX, BMC_TRUNC_HOSTNAME, ev.truncated);
    }
}

// Hostname (option 39) and vendor class (option 16) from the query.
void copy_query6(const isc::dhcp::Pkt6& query, bmc_lease_event& ev) {
    if (ev.hostname_len == 0) {
        // Kea copies option 39 into the lease's hostname when it processes
        // the FQDN; this covers a lease that has none. Its domain name is
        // only available as a string, as for option 81.
        auto fqdn = boost::dynamic_pointer_cast<isc::dhcp::Option6ClientFqdn>(
            peek_option(query, D6O_CLIENT_FQDN));
        if (fqdn) {
            const std::string name = fqdn->getDomainName();
            ev.hostname_len = copy_bounded(name.begin(), name.end(), ev.hostname,
                                           BMC_HOSTNAME_MAX, BMC_TRUNC_HOSTNAME, ev.truncated);
        }
    }
    const isc::dhcp::OptionPtr opt16 = peek_option(query, D6O_VENDOR_CLASS);
    if (!opt16) {
        return;
    }
    // Option 16 is an enterprise number and length-prefixed strings; the
    // patterns see the strings, joined by a space, as option 60's text.
    auto vendor = boost::dynamic_pointer_cast<isc::dhcp::OptionVendorClass>(opt16);
    if (!vendor) {
        const auto& data = opt16->getData();
        ev.vendor_class_len = copy_bounded(data.begin(), data.end(), ev.vendor_class,
                                           BMC_VENDOR_CLASS_MAX, BMC_TRUNC_VENDOR_CLASS,
                                           ev.truncated);
        return;
    }
    size_t used = 0;
    for (const auto& tuple : vendor->getTuples()) {
        const auto& data = tuple.getData();
        if (used > 0 && used < BMC_VENDOR_CLASS_MAX) {
            ev.vendor_class[used++] = ' ';
        }
        uint8_t n = copy_bounded(data.begin(), data.end(), ev.vendor_class + used,
                                 BMC_VENDOR_CLASS_MAX - used, BMC_TRUNC_VENDOR_CLASS,
                                 ev.truncated);
        used += n;
    }
    ev.vendor_class_len = static_cast<uint8_t>(used);
}

const std::string ARG_LEASE6 = "lease6";
const std::string ARG_LEASES6 = "leases6";
const std::string ARG_QUERY6 = "query6";

// A DHCPv6 REQUEST for an address the client already holds reaches no lease6
// callout in any Kea (the allocation engine only updates the lease:
// allocateLeases6 -> updateLeaseData, 2.2 to 3.0); leases6_committed sees
// every lease of the REQUEST's reply, new or held. So a REQUEST's new
// allocations come from lease6_select (as SELECT) and are noted here, per
// packet thread, and leases6_committed sends the REQUEST's other leases
// (as RENEW). Both callouts run on the same thread for one query, one after
// the other: Kea allocates and commits in processDhcp6Query.
//
// thread_local of plain data: no constructor, no lock; glibc sets up a
// dlopen'ed library's TLS block on a thread's first touch only.
struct SelectedInRequest {
    const void* query;
    uint8_t n;
    uint8_t addr[8][16];
};
thread_local SelectedInRequest selected_in_request;

bool selected_already(const void* query, const uint8_t (&addr)[16]) {
    const SelectedInRequest& s = selected_in_request;
    if (s.query != query) {
        return false;
    }
    for (uint8_t i = 0; i < s.n; ++i) {
        if (std::memcmp(s.addr[i], addr, 16) == 0) {
            return true;
        }
    }
    return false;
}

void note_selected(const void* query, const uint8_t (&addr)[16]) {
    SelectedInRequest& s = selected_in_request;
    if (s.query != query) {
        s.query = query;
        s.n = 0;
    }
    // More than 8 addresses in one REQUEST: the rest are sent again as RENEW,
    // which the in-flight table merges.
    if (s.n < 8) {
        std::memcpy(s.addr[s.n++], addr, 16);
    }
}

bool skipped(const CalloutHandle& handle) {
    const auto status = handle.getStatus();
    return status == CalloutHandle::NEXT_STEP_DROP || status == CalloutHandle::NEXT_STEP_SKIP;
}

void forward_lease6(const isc::dhcp::Lease6& lease, const isc::dhcp::Pkt6Ptr& query,
                    uint8_t kind, uint64_t start_ns) {
    bmc_lease_event ev = {};
    ev.start_ns = start_ns;
    ev.kind = kind;
    copy_lease6(lease, ev);
    if (query) {
        copy_query6(*query, ev);
    }
    bmc_on_lease(&ev);
}

// lease6_select, lease6_renew and lease6_rebind: one address lease each.
int forward_lease6_callout(CalloutHandle& handle, uint8_t kind) {
    try {
        const uint64_t start_ns = monotonic_ns();
        if (skipped(handle)) {
            return 0;
        }
        if (kind == BMC_LEASE_SELECT) {
            // SOLICIT (without rapid commit) runs lease6_select with
            // fake_allocation: only an ADVERTISE, no lease yet.
            bool fake_allocation = false;
            handle.getArgument(ARG_FAKE_ALLOCATION, fake_allocation);
            if (fake_allocation) {
                return 0;
            }
        }
        isc::dhcp::Lease6Ptr lease;
        handle.getArgument(ARG_LEASE6, lease);
        // Delegated prefixes are not a BMC's address.
        if (!lease || lease->type_ != isc::dhcp::Lease::TYPE_NA) {
            return 0;
        }
        isc::dhcp::Pkt6Ptr query;
        handle.getArgument(ARG_QUERY6, query);
        if (kind == BMC_LEASE_SELECT && query && query->getType() == DHCPV6_REQUEST) {
            uint8_t addr[16] = {};
            copy_ipv6(lease->addr_, addr);
            note_selected(query.get(), addr);
        }
        forward_lease6(*lease, query, kind, start_ns);
    } catch (const std::exception& ex) {
        log_what(BMC_DISCOVERY_LEASE_CALLOUT_FAILED, ex.what());
    } catch (...) {
        log_what(BMC_DISCOVERY_LEASE_CALLOUT_FAILED, "unknown exception");
    }
    return 0;
}

int lease6_select_callout(CalloutHandle& handle) {
    return forward_lease6_callout(handle, BMC_LEASE_SELECT);
}

int lease6_renew_callout(CalloutHandle& handle) {
    return forward_lease6_callout(handle, BMC_LEASE_RENEW);
}

int lease6_rebind_callout(CalloutHandle& handle) {
    return forward_lease6_callout(handle, BMC_LEASE_RENEW);
}

// After a REQUEST's reply is committed: the addresses the client already held.
int leases6_committed_callout(CalloutHandle& handle) {
    try {
        const uint64_t start_ns = monotonic_ns();
        if (skipped(handle)) {
            return 0;
        }
        isc::dhcp::Pkt6Ptr query;
        handle.getArgument(ARG_QUERY6, query);
        // RENEW and REBIND passed lease6_renew / lease6_rebind, SOLICIT with
        // rapid commit lease6_select; RELEASE and DECLINE hand out nothing.
        if (!query || query->getType() != DHCPV6_REQUEST) {
            return 0;
        }
        isc::dhcp::Lease6CollectionPtr leases;
        handle.getArgument(ARG_LEASES6, leases);
        if (leases) {
            for (const auto& lease : *leases) {
                if (!lease || lease->type_ != isc::dhcp::Lease::TYPE_NA) {
                    continue;
                }
                uint8_t addr[16] = {};
                copy_ipv6(lease->addr_, addr);
                if (!selected_already(query.get(), addr)) {
                    forward_lease6(*lease, query, BMC_LEASE_RENEW, start_ns);
                }
            }
        }
        selected_in_request.query = nullptr;
    } catch (const std::exception& ex) {
        log_what(BMC_DISCOVERY_LEASE_CALLOUT_FAILED, ex.what());
    } catch (...) {
        log_what(BMC_DISCOVERY_LEASE_CALLOUT_FAILED, "unknown exception");
    }
    return 0;
}

int dhcp6_srv_configured_callout(CalloutHandle& handle) {
    try {
        isc::dhcp::SrvConfigPtr config;
        handle.getArgument("server_config", config);
        ElementPtr subnets = Element::createMap();
        if (config) {
            subnets->set("subnet6", config->getCfgSubnets6()->toElement());
            subnets->set("shared-networks", config->getCfgSharedNetworks6()->toElement());
        }
        const std::string json = subnets->str();
        bmc_on_configured(json.data(), json.size());
    } catch (const std::exception& ex) {
        log_what(BMC_DISCOVERY_SUBNETS_READ_FAILED, ex.what());
    }
    return 0;
}

bool is_v6() { return isc::dhcp::CfgMgr::instance().getFamily() == AF_INET6; }

void append_to_string(void* ctx, const char* data, size_t len) {
    static_cast<std::string*>(ctx)->append(data, len);
}

int command_callout(CalloutHandle& handle) {
    try {
        ConstElementPtr command;
        handle.getArgument("command", command);
        const std::string request = command ? command->str() : std::string("{}");
        std::string answer;
        bmc_command(request.data(), request.size(), append_to_string, &answer);
        // Kea reads "response" back with an exact any_cast to ConstElementPtr.
        const ConstElementPtr response = Element::fromJSON(answer);
        handle.setArgument("response", response);
    } catch (const std::exception& ex) {
        handle.setArgument("response",
                           isc::config::createAnswer(isc::config::CONTROL_RESULT_ERROR,
                                                     std::string("bmc-discovery: ") + ex.what()));
    }
    return 0;
}

void report(bmc_sink sink, void* ctx, const std::string& text) { sink(ctx, text.data(), text.size()); }

const char TIMER_NAME[] = "bmc-discovery-tick";

void on_timer() {
    try {
        bmc_on_tick();
    } catch (...) {
        // bmc_on_tick catches its own panics; nothing C++ can throw here.
    }
}

}  // namespace

extern "C" {

int shim_hooks_version(void) { return KEA_HOOKS_VERSION; }

int shim_family(void) {
    try {
        return is_v6() ? 6 : 4;
    } catch (...) {
        return 4;
    }
}

int shim_library_parameters(void* library_handle, bmc_sink sink, void* ctx) {
    try {
        auto& handle = *static_cast<LibraryHandle*>(library_handle);
        ConstElementPtr params = handle.getParameters();
        report(sink, ctx, params ? params->str() : std::string("{}"));
        return 0;
    } catch (const std::exception& ex) {
        report(sink, ctx, ex.what());
        return 1;
    }
}

int shim_staged_hooks_libraries(bmc_sink sink, void* ctx) {
    try {
        ElementPtr list = Element::createList();
        isc::dhcp::SrvConfigPtr staging = isc::dhcp::CfgMgr::instance().getStagingCfg();
        if (staging) {
            for (const auto& lib : staging->getHooksConfig().get()) {
                ElementPtr entry = Element::createMap();
                entry->set("library", Element::create(hook_lib_name(lib)));
                ConstElementPtr parameters = hook_lib_parameters(lib);
                if (parameters) {
                    entry->set("parameters", parameters);
                }
                list->add(entry);
            }
        }
        report(sink, ctx, list->str());
        return 0;
    } catch (const std::exception& ex) {
        report(sink, ctx, ex.what());
        return 1;
    }
}

int shim_register(void* library_handle, const char* const* commands, size_t n_commands,
                  bmc_sink sink, void* ctx) {
    try {
        auto& handle = *static_cast<LibraryHandle*>(library_handle);
        // Each daemon knows only its own family's hook points: kea-dhcp6
        // refuses "dhcp4_srv_configured" (and kea-dhcp4 "leases6_committed").
        if (is_v6()) {
            handle.registerCallout("lease6_select", lease6_select_callout);
            handle.registerCallout("lease6_renew", lease6_renew_callout);
            handle.registerCallout("lease6_rebind", lease6_rebind_callout);
            handle.registerCallout("leases6_committed", leases6_committed_callout);
            handle.registerCallout("dhcp6_srv_configured", dhcp6_srv_configured_callout);
        } else {
            handle.registerCallout("lease4_select", lease4_select_callout);
            handle.registerCallout("lease4_renew", lease4_renew_callout);
            handle.registerCallout("dhcp4_srv_configured", dhcp4_srv_configured_callout);
        }
        for (size_t i = 0; i < n_commands; ++i) {
            handle.registerCommandCallout(commands[i], command_callout);
        }
        return 0;
    } catch (const std::exception& ex) {
        report(sink, ctx, ex.what());
        return 1;
    }
}

}  // extern "C"

namespace {

int active_leases6(bmc_lease_sink leases, void* leases_ctx) {
    auto& mgr = isc::dhcp::LeaseMgrFactory::instance();
    const isc::dhcp::LeasePageSize page(1000);
    isc::asiolink::IOAddress from = isc::asiolink::IOAddress::IPV6_ZERO_ADDRESS();
    for (;;) {
        const isc::dhcp::Lease6Collection batch = mgr.getLeases6(from, page);
        if (batch.empty()) {
            break;
        }
        for (const auto& lease : batch) {
            if (!lease || lease->type_ != isc::dhcp::Lease::TYPE_NA ||
                lease->state_ != isc::dhcp::Lease::STATE_DEFAULT || lease->expired()) {
                continue;
            }
            bmc_lease_event ev = {};
            ev.kind = BMC_LEASE_ACTIVE;
            copy_lease6(*lease, ev);
            leases(leases_ctx, &ev);
        }
        from = batch.back()->addr_;
        if (batch.size() < page.page_size_) {
            break;
        }
    }
    return 0;
}

}  // namespace

extern "C" {

int shim_active_leases(bmc_lease_sink leases, void* leases_ctx, bmc_sink sink, void* ctx) {
    try {
        if (!isc::dhcp::LeaseMgrFactory::haveInstance()) {
            report(sink, ctx, "Kea has no lease database open");
            return 1;
        }
        if (is_v6()) {
            return active_leases6(leases, leases_ctx);
        }
        auto& mgr = isc::dhcp::LeaseMgrFactory::instance();
        // Pages keep memory bounded however large the database is.
        const isc::dhcp::LeasePageSize page(1000);
        isc::asiolink::IOAddress from = isc::asiolink::IOAddress::IPV4_ZERO_ADDRESS();
        for (;;) {
            const isc::dhcp::Lease4Collection batch = mgr.getLeases4(from, page);
            if (batch.empty()) {
                break;
            }
            for (const auto& lease : batch) {
                if (!lease || lease->state_ != isc::dhcp::Lease::STATE_DEFAULT ||
                    lease->expired()) {
                    continue;
                }
                bmc_lease_event ev = {};
                ev.kind = BMC_LEASE_ACTIVE;
                copy_lease(*lease, ev);
                if (!lease->hostname_.empty()) {
                    ev.hostname_len = copy_bounded(lease->hostname_.begin(), lease->hostname_.end(),
                                                   ev.hostname, BMC_HOSTNAME_MAX,
                                                   BMC_TRUNC_HOSTNAME, ev.truncated);
                }
                leases(leases_ctx, &ev);
            }
            from = batch.back()->addr_;
            if (batch.size() < page.page_size_) {
                break;
            }
        }
        return 0;
    } catch (const std::exception& ex) {
        report(sink, ctx, ex.what());
        return 1;
    }
}

int shim_timer_start(uint32_t interval_ms, bmc_sink sink, void* ctx) {
    try {
        const auto& timers = isc::dhcp::TimerMgr::instance();
        if (timers->isTimerRegistered(TIMER_NAME)) {
            timers->unregisterTimer(TIMER_NAME);
        }
        timers->registerTimer(TIMER_NAME, on_timer, static_cast<long>(interval_ms),
                              isc::asiolink::IntervalTimer::REPEATING);
        timers->setup(TIMER_NAME);
        return 0;
    } catch (const std::exception& ex) {
        report(sink, ctx, ex.what());
        return 1;
    }
}

void shim_timer_stop(void) {
    try {
        const auto& timers = isc::dhcp::TimerMgr::instance();
        if (timers->isTimerRegistered(TIMER_NAME)) {
            timers->unregisterTimer(TIMER_NAME);
        }
    } catch (const std::exception& ex) {
        log_what(BMC_DISCOVERY_TIMER_STOP_FAILED, ex.what());
    }
}

int shim_stat_set(const char* name, int64_t value) {
    try {
        isc::stats::StatsMgr::instance().setValue(name, value);
        return 0;
    } catch (...) {
        return 1;
    }
}

int shim_stat_del(const char* name) {
    try {
        isc::stats::StatsMgr::instance().del(name);
        return 0;
    } catch (...) {
        return 1;
    }
}

}  // extern "C"
