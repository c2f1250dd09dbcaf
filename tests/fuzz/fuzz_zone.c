/* libFuzzer target: the TZif reader (src/ops/zone.c). Any input is parsed or refused with
 * SB_E_CORRUPT (or SB_E_INTERNAL on out of memory); a parsed zone answers offsets within
 * UTC-25h..UTC+26h for instants from year 0 to 9999 (the range the scheduler uses). */
#include <stdint.h>
#include <stdlib.h>

#include "snapback/zone.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sb_error err = SB_ERROR_INIT;
    struct sb_zone *zone = NULL;
    if (sb_zone_parse(data, size, "fuzz", &zone, &err) < 0) {
        if (err.code != SB_E_CORRUPT && err.code != SB_E_INTERNAL)
            abort();
        return 0;
    }
    static const int64_t probes[] = {
        -62167219200LL,
        -2208988800LL,
        -1,
        0,
        1,
        1000000000LL,
        1774746000LL,
        2147483647LL,
        2147483648LL,
        4102444800LL,
        253402300799LL,
    };
    for (size_t idx = 0; idx < sizeof(probes) / sizeof(probes[0]); idx++) {
        int64_t off = sb_zone_offset(zone, probes[idx]);
        if (off < -25 * 3600 || off > 26 * 3600 + 3600)
            abort();
    }
    sb_zone_free(zone);
    return 0;
}
