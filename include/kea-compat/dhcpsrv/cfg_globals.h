// Stand-in for <dhcpsrv/cfg_globals.h>, which Debian 12's kea-dev 2.2.0
// forgets to ship although network.h, srv_config.h, cfgmgr.h and lease_mgr.h
// include it. build.rs puts this directory on the include path only when the
// system header is missing.
//
// It declares just enough for those headers to compile. SrvConfig and Network
// hold CfgGlobals through a shared_ptr, so their layout does not depend on
// this class. The index values below are placeholders, NOT Kea's: the shim
// must never call the inline Network/SrvConfig getters that look globals up
// by index (getValid(), getT1(), getConfiguredGlobal(int), ...). It only uses
// identifiers, user-context, toElement() and the hooks configuration.
#ifndef BMC_DISCOVERY_COMPAT_CFG_GLOBALS_H
#define BMC_DISCOVERY_COMPAT_CFG_GLOBALS_H

#include <cc/cfg_to_element.h>
#include <cc/data.h>

#include <boost/shared_ptr.hpp>

#include <string>

namespace isc {
namespace dhcp {

class CfgGlobals : public isc::data::CfgToElement {
public:
    enum Index {
        AUTHORITATIVE, BOOT_FILE_NAME, CACHE_MAX_AGE, CACHE_THRESHOLD, CALCULATE_TEE_TIMES,
        DDNS_GENERATED_PREFIX, DDNS_OVERRIDE_CLIENT_UPDATE, DDNS_OVERRIDE_NO_UPDATE,
        DDNS_QUALIFYING_SUFFIX, DDNS_REPLACE_CLIENT_NAME, DDNS_SEND_UPDATES,
        DDNS_UPDATE_ON_RENEW, DDNS_USE_CONFLICT_RESOLUTION, HOSTNAME_CHAR_REPLACEMENT,
        HOSTNAME_CHAR_SET, MATCH_CLIENT_ID, MAX_PREFERRED_LIFETIME, MAX_VALID_LIFETIME,
        MIN_PREFERRED_LIFETIME, MIN_VALID_LIFETIME, NEXT_SERVER, PREFERRED_LIFETIME,
        REBIND_TIMER, RENEW_TIMER, RESERVATIONS_GLOBAL, RESERVATIONS_IN_SUBNET,
        RESERVATIONS_OUT_OF_POOL, SERVER_HOSTNAME, STORE_EXTENDED_INFO, T1_PERCENT, T2_PERCENT,
        VALID_LIFETIME, SIZE
    };

    isc::data::ConstElementPtr get(const std::string& name) const;
    isc::data::ConstElementPtr get(int index) const;
    void set(const std::string& name, isc::data::ConstElementPtr value);
    void clear();
    isc::data::ElementPtr toElement() const;
};

typedef boost::shared_ptr<CfgGlobals> CfgGlobalsPtr;
typedef boost::shared_ptr<const CfgGlobals> ConstCfgGlobalsPtr;

}  // namespace dhcp
}  // namespace isc

#endif
