/* libFuzzer target: the manifest parser. Any input is parsed or refused with SB_E_CORRUPT;
 * a parsed manifest is serialised again and must parse to the same object list. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "snapback/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sb_error err = SB_ERROR_INIT;
    struct sb_manifest *m = NULL;
    if (sb_manifest_from_json((const char *)data, size, &m, &err) < 0) {
        if (err.code != SB_E_CORRUPT && err.code != SB_E_INTERNAL)
            abort();
        return 0;
    }
    char *json = NULL;
    if (sb_manifest_to_json(m, &json, &err) == 0) {
        struct sb_manifest *again = NULL;
        if (sb_manifest_from_json(json, strlen(json), &again, &err) < 0)
            abort();
        if (again->object_count != m->object_count)
            abort();
        sb_manifest_free(again);
        free(json);
    }
    sb_manifest_free(m);
    return 0;
}
