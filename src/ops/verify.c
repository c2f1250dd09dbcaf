/* Verify (DESIGN §8): every object of a snapshot is read through the whole restore chain
 * without writing anything: stored size and BLAKE2b against the manifest, every chunk
 * authenticated, TAG_FINAL present, zstd frames complete, and every tar entry walked (names
 * checked as restore would). Each object's outcome is reported separately. */
#include "snapback/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapback/core.h"
#include "snapback/sources.h"

static bool
is_tree_object(const struct sb_manifest *m, const char *name)
{
    if (m->has_release && strcmp(m->release.object, name) == 0)
        return true;
    for (size_t idx = 0; idx < m->shared_count; idx++)
        if (strcmp(m->shared[idx].object, name) == 0)
            return true;
    return false;
}

int
sb_verify_run(struct sb_repo *repo, const struct sb_manifest *m, struct sb_verify_result *res,
              struct sb_error *err)
{
    memset(res, 0, sizeof(*res));
    res->objects = calloc(m->object_count ? m->object_count : 1, sizeof(*res->objects));
    if (!res->objects)
        return sb_error_set(err, SB_E_INTERNAL, 0, "out of memory");
    bool first_error = true;
    for (size_t idx = 0; idx < m->object_count; idx++) {
        const struct sb_manifest_object *o = &m->objects[idx];
        struct sb_verify_object *v = &res->objects[res->count++];
        struct sb_error oerr = SB_ERROR_INIT;
        struct sb_istream *in = NULL;
        struct sb_digest expect;
        memcpy(expect.hash, o->blake2b, SB_HASH_BYTES);
        expect.size = o->stored_size;
        v->name = sb_repo_object_path(repo, o->name);
        if (!v->name)
            return sb_error_set(err, SB_E_INTERNAL, 0, "out of memory");
        int rc = sb_object_open(repo->store, v->name, repo->key, &expect, &in, &oerr);
        if (rc == 0) {
            if (is_tree_object(m, o->name))
                rc = sb_tree_extract(in, NULL, SB_EXTRACT_LIST, &v->entries, &oerr);
            else
                rc = sb_istream_drain(in, &oerr);
        }
        sb_istream_free(in);
        v->plain_bytes = o->plain_size;
        v->ok = rc == 0;
        if (!v->ok) {
            res->failed++;
            snprintf(v->error, sizeof(v->error), "%s", oerr.msg);
            if (first_error) {
                *err = oerr;
                sb_error_wrap(err, "object '%s'", v->name);
                first_error = false;
            }
        }
    }
    return 0;
}

void
sb_verify_result_release(struct sb_verify_result *res)
{
    for (size_t idx = 0; idx < res->count; idx++)
        free(res->objects[idx].name);
    free(res->objects);
    memset(res, 0, sizeof(*res));
}
