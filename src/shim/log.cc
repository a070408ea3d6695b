// The Kea logger behind the Rust `log` bridge (src/logging.rs).
//
// The logger is "bmc-discovery", a child of the server's root logger, so it
// appears as kea-dhcp4.bmc-discovery and follows the operator's `loggers`
// configuration (severity, debuglevel, output). Kea loggers need message IDs
// from a dictionary; the hook has one per severity and the text is formatted
// in Rust.

// First, as in callouts.cc: Kea 3.0's headers require config.h before them.
#include <config.h>

#include <bmc_discovery.h>

#include <log/log_dbglevels.h>
#include <log/logger.h>
#include <log/macros.h>
#include <log/message_initializer.h>

#include <string>

namespace {

isc::log::Logger bmc_logger("bmc-discovery");

const isc::log::MessageID BMC_DISCOVERY_ERROR = "BMC_DISCOVERY_ERROR";
const isc::log::MessageID BMC_DISCOVERY_WARN = "BMC_DISCOVERY_WARN";
const isc::log::MessageID BMC_DISCOVERY_INFO = "BMC_DISCOVERY_INFO";
const isc::log::MessageID BMC_DISCOVERY_DEBUG = "BMC_DISCOVERY_DEBUG";

const char* message_values[] = {
    "BMC_DISCOVERY_ERROR", "%1",  //
    "BMC_DISCOVERY_WARN",  "%1",  //
    "BMC_DISCOVERY_INFO",  "%1",  //
    "BMC_DISCOVERY_DEBUG", "%1",  //
    NULL,
};
const isc::log::MessageInitializer message_initializer(message_values);

// Kea debug levels run 0..99; Rust's two debug levels map onto Kea's usual
// "basic trace" and "detailed trace" levels.
int debug_level(int severity) {
    return severity == BMC_LOG_TRACE ? isc::log::DBGLVL_TRACE_DETAIL
                                     : isc::log::DBGLVL_TRACE_BASIC;
}

// Kea loads hook message dictionaries after a full load, but validation
// (kea-dhcp4 -t, config-test) only calls version(), which logs when it
// refuses parameters. Load the pending dictionary on first use either way.
void ensure_dictionary() {
    static const bool loaded = (isc::log::MessageInitializer::loadDictionary(true), true);
    (void)loaded;
}

}  // namespace

extern "C" {

int shim_log_enabled(int severity) {
    try {
        switch (severity) {
            case BMC_LOG_ERROR:
                return bmc_logger.isErrorEnabled() ? 1 : 0;
            case BMC_LOG_WARN:
                return bmc_logger.isWarnEnabled() ? 1 : 0;
            case BMC_LOG_INFO:
                return bmc_logger.isInfoEnabled() ? 1 : 0;
            default:
                return bmc_logger.isDebugEnabled(debug_level(severity)) ? 1 : 0;
        }
    } catch (...) {
        return 0;
    }
}

void shim_log(int severity, const char* message, size_t len) {
    try {
        ensure_dictionary();
        const std::string text(message, len);
        switch (severity) {
            case BMC_LOG_ERROR:
                LOG_ERROR(bmc_logger, BMC_DISCOVERY_ERROR).arg(text);
                break;
            case BMC_LOG_WARN:
                LOG_WARN(bmc_logger, BMC_DISCOVERY_WARN).arg(text);
                break;
            case BMC_LOG_INFO:
                LOG_INFO(bmc_logger, BMC_DISCOVERY_INFO).arg(text);
                break;
            default:
                LOG_DEBUG(bmc_logger, debug_level(severity), BMC_DISCOVERY_DEBUG).arg(text);
                break;
        }
    } catch (...) {
        // Logging must never take Kea down; a lost line is the lesser harm.
    }
}

}  // extern "C"
