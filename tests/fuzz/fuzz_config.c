/* libFuzzer target for the config parser: any bytes must give a config or an SB_E_CONFIG
 * error, never a crash, a leak or a read past the end of the input (which is not
 * NUL-terminated). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "snapback/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sb_config *cfg = NULL;
    struct sb_error err = SB_ERROR_INIT;

    if (sb_config_parse((const char *)data, size, "fuzz.json", &cfg, &err) == 0)
        sb_config_free(cfg);
    else if (err.code != SB_E_CONFIG && err.code != SB_E_INTERNAL)
        abort();
    return 0;
}
