// The HA hook's view of this server, asked in-process.
//
// Kea's HA hook (libdhcp_ha) says which scopes this server answers clients
// for in its `ha-heartbeat` command. The hook asks it on Kea's main thread
// to notice when this server takes over its partner's clients (the standby
// going partner-down, a load-balancing peer taking the other's scope):
// leases the partner allocated reached this server only as HA lease
// updates, which run no lease callouts, so they are found by reconciling.
//
// The command goes straight to the HA hook's handler, as Kea's own command
// manager delegates it (HooksManager::callCommandHandlers), and not through
// the command manager: that logs every command it receives, and a poll
// every few seconds would fill Kea's log.

#include <config.h>

#include <bmc_discovery.h>

#include <cc/command_interpreter.h>
#include <cc/data.h>
#include <hooks/callout_handle.h>
#include <hooks/hooks_manager.h>

#include <string>

using isc::data::ConstElementPtr;
using isc::hooks::CalloutHandle;
using isc::hooks::HooksManager;

namespace {

const char* const HEARTBEAT = "ha-heartbeat";

void report(bmc_sink sink, void* ctx, const std::string& text) {
    if (sink) {
        sink(ctx, text.data(), text.size());
    }
}

}  // namespace

extern "C" {

int shim_ha_heartbeat(bmc_sink sink, void* ctx) {
    try {
        if (!HooksManager::commandHandlersPresent(HEARTBEAT)) {
            return 2;
        }
        boost::shared_ptr<CalloutHandle> handle = HooksManager::createCalloutHandle();
        handle->setStatus(CalloutHandle::NEXT_STEP_CONTINUE);
        handle->deleteAllArguments();
        ConstElementPtr command = isc::config::createCommand(HEARTBEAT);
        ConstElementPtr response;
        handle->setArgument("command", command);
        handle->setArgument("response", response);
        HooksManager::callCommandHandlers(HEARTBEAT, *handle);
        handle->getArgument("response", response);
        if (!response) {
            report(sink, ctx, "the HA hook set no response to ha-heartbeat");
            return 1;
        }
        report(sink, ctx, response->str());
        return 0;
    } catch (const std::exception& ex) {
        report(sink, ctx, ex.what());
        return 1;
    } catch (...) {
        report(sink, ctx, "unknown exception");
        return 1;
    }
}

}  // extern "C"
