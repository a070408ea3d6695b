/*
 * bmc_discovery.h: the only contract between the C++ shim (src/shim/) and
 * the Rust library (src/). Rust bindings are generated from this file by
 * bindgen in build.rs, so the two sides cannot drift apart.
 *
 * Direction of calls:
 *   Kea -> Rust   version/load/unload/multi_threading_compatible (src/ffi.rs)
 *   Rust -> C++   shim_* (parameters, callout/command registration, logging)
 *   C++ -> Rust   bmc_*  (one lease event, the configured subnets, a command)
 * Every bmc_* function catches panics; every shim_* function catches C++
 * exceptions. Nothing unwinds across this boundary.
 */
#ifndef BMC_DISCOVERY_H
#define BMC_DISCOVERY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Sizes of the inline buffers of one event. The event is copied by value into
 * a preallocated channel slot, so it holds no pointers and needs no heap. */
#define BMC_HWADDR_MAX 20
#define BMC_HOSTNAME_MAX 255
#define BMC_CLIENT_ID_MAX 64
#define BMC_VENDOR_CLASS_MAX 128

/* Which callout saw the lease. */
#define BMC_LEASE_SELECT 1 /* lease4_select / lease6_select, a real allocation (not DISCOVER/SOLICIT) */
#define BMC_LEASE_RENEW 2  /* the client already held it: lease4_renew; lease6_renew, lease6_rebind,
                              and a DHCPv6 REQUEST for a held address (leases6_committed) */
#define BMC_LEASE_REPLAY 3 /* Rust only: scheduled from the state store (retry, reconciliation) */
#define BMC_LEASE_ACTIVE 4 /* an active lease read from Kea's lease database (reconciliation) */
#define BMC_LEASE_FORCED 5 /* Rust only: bmc-discover, whatever the BMC's state */

/* Bits of bmc_lease_event.truncated: the field did not fit its buffer. */
#define BMC_TRUNC_HOSTNAME 1
#define BMC_TRUNC_CLIENT_ID 2
#define BMC_TRUNC_VENDOR_CLASS 4

/* bmc_lease_event.family: which address field holds the lease. */
#define BMC_FAMILY_V4 4
#define BMC_FAMILY_V6 6

/* Log severities understood by shim_log / shim_log_enabled. */
#define BMC_LOG_ERROR 1
#define BMC_LOG_WARN 2
#define BMC_LOG_INFO 3
#define BMC_LOG_DEBUG 4
#define BMC_LOG_TRACE 5

/* One lease as the shim copied it out of Kea's objects on a packet thread. */
typedef struct bmc_lease_event {
    uint64_t start_ns;       /* CLOCK_MONOTONIC at callout entry (cost histogram); 0 outside callouts */
    int64_t cltt;            /* lease's client last transaction time, Unix seconds */
    uint32_t ipv4;           /* leased address when family is BMC_FAMILY_V4, host byte order */
    uint32_t subnet_id;
    uint32_t valid_lifetime; /* seconds */
    uint16_t htype;          /* hardware type (1 = Ethernet) */
    uint8_t kind;            /* BMC_LEASE_SELECT or BMC_LEASE_RENEW */
    uint8_t family;          /* BMC_FAMILY_V4 or BMC_FAMILY_V6 (0 reads as V4) */
    uint8_t truncated;       /* BMC_TRUNC_* bits */
    uint8_t hwaddr_len;
    uint8_t client_id_len;
    uint8_t vendor_class_len;
    uint8_t hostname_len;
    uint8_t ipv6[16];        /* leased address when family is BMC_FAMILY_V6, network order */
    /* v4: the lease's hardware address. v6: the one Kea found for the lease
     * (its mac-sources: DUID-LL/LLT, link-local EUI-64, relay option 79);
     * hwaddr_len 0 when Kea found none, and then the DUID identifies it. */
    uint8_t hwaddr[BMC_HWADDR_MAX];
    uint8_t client_id[BMC_CLIENT_ID_MAX];       /* v4: option 61; v6: the DUID */
    uint8_t vendor_class[BMC_VENDOR_CLASS_MAX]; /* v4: option 60, raw; v6: option 16's data */
    uint8_t hostname[BMC_HOSTNAME_MAX];         /* lease, else option 12 / 81 (v4), 39 (v6) */
} bmc_lease_event;

/* Receives bytes the other side owns; valid only during the call. */
typedef void (*bmc_sink)(void *ctx, const char *data, size_t len);

/* Receives one lease the other side owns; valid only during the call. */
typedef void (*bmc_lease_sink)(void *ctx, const bmc_lease_event *event);

/* ---- C++ side (src/shim/), called from Rust ------------------------------ */

/* KEA_HOOKS_VERSION of the headers the shim was compiled against. */
int shim_hooks_version(void);

/* The hook's "parameters" map as JSON, passed to sink ("{}" when absent).
 * Returns 0, or 1 on error (then sink received the error text). */
int shim_library_parameters(void *library_handle, bmc_sink sink, void *ctx);

/* The hooks-libraries of the configuration Kea is parsing (the staging
 * configuration), as a JSON list of {"library", "parameters"}. Kea validates
 * libraries -- for `kea-dhcp4 -t`, `config-test` and before every load --
 * by calling version() only, with the parameters already parsed; this is how
 * the hook sees its parameters then. Returns 0, or 1 (error text to sink). */
int shim_staged_hooks_libraries(bmc_sink sink, void *ctx);

/* The family of the daemon that loaded the library: 4 (kea-dhcp4) or 6
 * (kea-dhcp6), from Kea's CfgMgr, which each daemon's main() sets before it
 * reads its configuration (also for -t). */
int shim_family(void);

/* Registers the lease callouts of the loading daemon's family (4:
 * lease4_select, lease4_renew, dhcp4_srv_configured; 6: lease6_select,
 * lease6_renew, lease6_rebind, leases6_committed, dhcp6_srv_configured)
 * and the named control commands on the library handle. Returns 0, or 1 on
 * error (text to sink). */
int shim_register(void *library_handle, const char *const *commands, size_t n_commands,
                  bmc_sink sink, void *ctx);

/* Every active lease (default state, not expired; v6: addresses, not
 * prefixes) of the daemon's family in Kea's lease database,
 * read page by page, each passed to `leases` (kind BMC_LEASE_ACTIVE). Kea's
 * main thread only. Returns 0, or 1 on error (error text to sink). */
int shim_active_leases(bmc_lease_sink leases, void *leases_ctx, bmc_sink sink, void *ctx);

/* Starts (or restarts) a repeating timer on Kea's TimerMgr that calls
 * bmc_on_tick() on Kea's main thread every interval_ms. Kea's main thread
 * only. Returns 0, or 1 on error (error text to sink). */
int shim_timer_start(uint32_t interval_ms, bmc_sink sink, void *ctx);

/* Unregisters that timer if it is registered. TimerMgr's own handler looks
 * the timer up by name, so a tick already queued finds nothing to call once
 * the library is gone. Kea's main thread only. */
void shim_timer_stop(void);

/* Sets an integer statistic in Kea's StatsMgr (statistic-get-all), or
 * removes it. Kea's main thread only. Return 0, or 1 on error. */
int shim_stat_set(const char *name, int64_t value);
int shim_stat_del(const char *name);

/* The HA hook's `ha-heartbeat` answer for this server (its HA state and
 * the scopes it serves), asked in-process without Kea's command manager
 * (which logs every command). Kea's main thread only. Returns 0 with the
 * answer as JSON to sink, 2 when no HA hook is loaded, 1 on error (text to
 * sink). */
int shim_ha_heartbeat(bmc_sink sink, void *ctx);

/* Kea logger "bmc-discovery" (kea-dhcp4.bmc-discovery, kea-dhcp6.bmc-discovery). `id` is one of the
 * message IDs of src/kea/bmc_discovery_messages.mes, which the shim
 * registers with Kea; Kea fills the message's %1..%N with `args` in order.
 * Any thread; never throws. */
typedef struct bmc_str {
    const char *ptr;
    size_t len;
} bmc_str;
int shim_log_enabled(int severity);
void shim_log(const char *id, int severity, const bmc_str *args, size_t nargs);

/* ---- Rust side (src/ffi.rs), called from the shim ------------------------ */

/* One real lease from a packet thread: filter + try_send, never blocks. */
void bmc_on_lease(const bmc_lease_event *event);

/* The server's subnets after each (re)configuration, as the JSON map
 * {"subnet4" or "subnet6": [...], "shared-networks": [...]} of the live configuration
 * (Kea's own toElement(), so every subnet has its id). Kea's main thread. */
void bmc_on_configured(const char *json, size_t len);

/* Kea's main thread, every interval of shim_timer_start(). */
void bmc_on_tick(void);

/* A control command: the request as JSON in, Kea's answer shape
 * {"result", "text", "arguments"} as JSON to sink. Kea's main thread. */
void bmc_command(const char *json, size_t len, bmc_sink sink, void *ctx);

#ifdef __cplusplus
}
#endif

#endif /* BMC_DISCOVERY_H */
