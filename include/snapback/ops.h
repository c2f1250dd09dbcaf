/* Operations: the repository as the commands see it, and the jobs run on it (snapshot,
 * restore, verify), with the lock and the journal kept in state_dir. No function here prints
 * to stdout or exits: results come back as structs, failures as sb_error. */
#ifndef SNAPBACK_OPS_H
#define SNAPBACK_OPS_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "snapback/config.h"
#include "snapback/format.h"
#include "snapback/sources.h"

struct sb_repo {
    struct sb_store *store; /* owned: the repository */
    struct sb_store *spool; /* owned: state_dir/spool for a remote repository, else NULL */
    struct sb_key *key;     /* owned; a public recipient key on a write-only host; its ring
                               holds the config's old_key_files */
    bool key_is_current;    /* false: a key 'key rotate' retired (reads, never writes) */
    char *app;
    char *catalog_dir; /* state_dir/catalog */
    struct sb_repo_meta meta;
    struct sb_object_params params;
    /* opened from state_dir's copy of a remote repository's snapback.json because the server
     * could not be reached: only the spool and the catalog may be used */
    bool offline;
};

/* Where a snapshot writes its objects: the spool for a remote repository (uploaded by
 * sb_spool_push), the repository itself when it is local. */
struct sb_store *sb_repo_write_store(struct sb_repo *repo);
/* Uploads everything in the spool: objects first, manifests last, each removed from the spool
 * once it is complete on the server. A failure (SB_E_UNAVAILABLE) leaves the rest spooled
 * for the next run. *pushed counts uploaded files. */
int sb_spool_push(struct sb_repo *repo, size_t *pushed, struct sb_error *err);
/* Files waiting in the spool (0 for a local repository). */
int sb_spool_pending(const struct sb_config *cfg, size_t *count, struct sb_error *err);

/* The store named by repository.url (local for now). */
int sb_repo_store_new(const struct sb_config *cfg, struct sb_store **out, struct sb_error *err);
/* Creates snapback.json in the repository, refusing an existing one. The key must exist. */
int sb_repo_init(const struct sb_config *cfg, const struct sb_key *key, struct sb_repo_meta *meta,
                 struct sb_error *err);
/* Opens the repository with the config's key; a key that does not match the repository's key
 * id is refused (SB_E_CORRUPT) before any object is read. */
int sb_repo_open(const struct sb_config *cfg, struct sb_repo **out, struct sb_error *err);
/* For a remote repository whose server cannot be reached: opens it from the copy of its
 * snapback.json that the last successful sb_repo_open kept in state_dir/remote.json (the
 * key is checked against it as usual), with repo->offline set. SB_E_UNAVAILABLE when there
 * is no such copy for this repository.url. */
int sb_repo_open_offline(const struct sb_config *cfg, struct sb_repo **out, struct sb_error *err);
/* sb_repo_open, and for a remote repository whose server cannot be reached (SB_E_UNAVAILABLE)
 * sb_repo_open_offline: then *unreachable holds why, and (*out)->offline is set. */
int sb_repo_open_reachable_or_offline(const struct sb_config *cfg, struct sb_repo **out,
                                      struct sb_error *unreachable, struct sb_error *err);
/* Makes new_key the repository's current key (snapback.json replaced atomically); the old
 * one is recorded as retired, so snapshots written with it stay readable with it. */
int sb_repo_rotate_key(struct sb_repo *repo, const struct sb_key *new_key, struct sb_error *err);
void sb_repo_free(struct sb_repo *repo);
/* Snapshot ids present (sorted oldest first; ids sort by time). */
int sb_repo_list_ids(struct sb_repo *repo, char ***ids, size_t *count, struct sb_error *err);
/* Loads and authenticates one manifest. SB_E_NOTFOUND when there is no such snapshot. */
int sb_repo_load_manifest(struct sb_repo *repo, const char *id, struct sb_manifest **out,
                          struct sb_error *err);
/* "latest", a full id or a unique prefix of one -> full id (malloc'd). */
int sb_repo_resolve_id(struct sb_repo *repo, const char *spec, char **id, struct sb_error *err);
/* "<app>/<name>": the path of a manifest's object in the store (malloc'd). */
char *sb_repo_object_path(const struct sb_repo *repo, const char *name);
/* The catalog: a plain copy of every manifest this host wrote (state_dir/catalog/APP/ID.json,
 * 0600), written before the manifest itself, removed by prune. sb_repo_load_manifest reads
 * it when the key cannot read (a write-only host). */
/* Like sb_repo_load_manifest, but for a remote repository (or a key that cannot read) from
 * the catalog when this host wrote the snapshot (manifests are immutable, so the copy is the
 * manifest): no download for list, show, prune, rollback plans and release reuse. verify and
 * restore read the repository's own manifest. */
int sb_repo_load_manifest_cached(struct sb_repo *repo, const char *id, struct sb_manifest **out,
                                 struct sb_error *err);
int sb_catalog_put(struct sb_repo *repo, const char *id, const char *json, struct sb_error *err);
int sb_catalog_remove(struct sb_repo *repo, const char *id, struct sb_error *err);
/* Removes catalog entries older than older_than whose snapshot is not among ids (the run that
 * wrote them died before its manifest). */
int sb_catalog_sweep(struct sb_repo *repo, char **ids, size_t nids, time_t older_than,
                     struct sb_error *err);
bool sb_snapshot_id_valid(const char *id);

/* --- lock and journal (state_dir) --- */
struct sb_lock;
/* flock on state_dir/lock; another holder -> SB_E_TEMPFAIL naming its pid, at once when
 * wait_s <= 0, else after waiting up to wait_s seconds for it to go away. */
int sb_lock_acquire(const char *state_dir, const char *command, int wait_s, struct sb_lock **out,
                    struct sb_error *err);
void sb_lock_release(struct sb_lock *lock);
/* Appends one JSON line to state_dir/journal.jsonl and fsyncs it. */
int sb_journal_append(const char *state_dir, const char *event, const char *outcome,
                      const char *snapshot, const char *detail, double duration_s,
                      struct sb_error *err);

struct sb_journal_entry {
    bool present;
    time_t time;
    char outcome[16];
    char snapshot[32];
    char detail[512];
    double duration_s;
};
/* The newest entry of `event` and the newest successful one (present = false when none). */
int sb_journal_last(const char *state_dir, const char *event, struct sb_journal_entry *last,
                    struct sb_journal_entry *last_ok, struct sb_error *err);

/* Records a job's outcome and rewrites metrics_file (Prometheus text, atomic) when the
 * config has one; a no-op otherwise. */
int sb_metrics_record(const struct sb_config *cfg, const char *job, bool ok, double duration_s,
                      uint64_t bytes, uint64_t objects, unsigned warnings, struct sb_error *err);

/* --- jobs --- */
#define SB_PART_RELEASE 1u
#define SB_PART_SHARED 2u
#define SB_PART_DB 4u
#define SB_PART_ALL (SB_PART_RELEASE | SB_PART_SHARED | SB_PART_DB)

/* Parses "release,shared,db" into SB_PART_* bits. */
int sb_parts_parse(const char *text, unsigned *parts, struct sb_error *err);

struct sb_snapshot_opts {
    const char *tag;
    unsigned parts;
};

/* Takes a snapshot: objects first, the manifest last. *out is the stored manifest. */
int sb_snapshot_run(const struct sb_config *cfg, struct sb_repo *repo,
                    const struct sb_snapshot_opts *opts, struct sb_manifest **out,
                    struct sb_error *err);

struct sb_db_target {
    const char *name;   /* database name in the config and the manifest */
    const char *target; /* database name on its server, or a file path for sqlite */
};

struct sb_restore_opts {
    const char *target; /* must not exist, or be an empty directory; NULL when only
                         * databases are restored into databases */
    unsigned parts;
    const struct sb_config *cfg; /* for database connections */
    const struct sb_db_target *db_targets;
    size_t db_target_count;
    bool in_place; /* databases without a db_target go into their live database */
    /* restore --path: only these files and directories, as paths in the restored layout
     * (releases/NAME/..., current/..., a shared path/...); clean relative paths */
    const char *const *paths;
    size_t path_count;
};
#define SB_RESTORE_PATHS_MAX 64

struct sb_restore_result {
    uint64_t entries;
    uint64_t bytes;
};

/* Restores into a temp dir beside target, renamed into place once complete:
 * target/releases/NAME/, target/current -> releases/NAME, target/<shared path>/, and
 * target/databases/NAME.{pgdump,sql,sqlite3} for dumps not restored into a database. */
int sb_restore_run(struct sb_repo *repo, const struct sb_manifest *m,
                   const struct sb_restore_opts *opts, struct sb_restore_result *res,
                   struct sb_error *err);

/* snapback ls: every entry of snapshot m, named as restore --target lays it out
 * (releases/NAME/..., current, the shared paths, databases/NAME.pgdump|.sql|.sqlite3), or
 * only those at or below paths (as restore --path takes them). Every object listed is read to
 * its end and checked as a restore reads it. A path that matches nothing: SB_E_NOTFOUND. */
struct sb_ls_opts {
    unsigned parts; /* SB_PART_*, 0 = all */
    const char *const *paths;
    size_t path_count;
    bool (*visit)(const struct sb_tree_entry *entry, void *arg); /* false: stop (SB_E_IO) */
    void *arg;
};
int sb_ls_run(struct sb_repo *repo, const struct sb_manifest *m, const struct sb_ls_opts *opts,
              struct sb_error *err);

/* Extracts a tree object (release or shared path) of m into dest, an existing empty dir. */
int sb_restore_tree_object(struct sb_repo *repo, const struct sb_manifest *m, const char *name,
                           const char *dest, struct sb_error *err);

/* --- releases (Capistrano layout) and rollback --- */

/* The release `current` points to: a symlink to a directory directly inside the releases
 * directory; anything else is SB_E_CONFIG. *name is malloc'd. */
int sb_release_current(const struct sb_config *cfg, char **name, struct sb_error *err);
/* Release directories on disk, sorted by name (as Capistrano does); hidden entries (our
 * .NAME.tmp) are skipped. */
int sb_release_list(const struct sb_config *cfg, char ***names, size_t *count,
                    struct sb_error *err);
/* Points `current` at releases/NAME atomically (a new symlink renamed over it). */
int sb_release_switch(const struct sb_config *cfg, const char *name, struct sb_error *err);

struct sb_rollback_opts {
    const char *to;    /* "previous", a release name or a snapshot id */
    int with_database; /* 1 yes, 0 no, -1 as rollback.database says */
    bool no_safety_snapshot;
};

struct sb_rollback_plan {
    char *from_release;
    char *to_release;
    bool release_on_disk;
    char *release_snapshot; /* to restore the release from, when it is not on disk */
    bool with_database;
    char *db_snapshot; /* snapshot whose databases come back */
    size_t db_count;
    /* An earlier rollback from_release -> to_release was killed after its switch (its
     * "started" journal line has no outcome after it) and to_release is live: only step 7
     * (after_rollback, health check, auto-revert to from_release) is left to do. */
    bool resume;
    char *resume_safety; /* that run's safety snapshot, or NULL */
};

int sb_rollback_plan_make(const struct sb_config *cfg, struct sb_repo *repo,
                          const struct sb_rollback_opts *opts, struct sb_rollback_plan *plan,
                          struct sb_error *err);
void sb_rollback_plan_release(struct sb_rollback_plan *plan);

struct sb_rollback_result {
    char safety_snapshot[32]; /* empty when none was taken */
    bool switched;            /* current points at the target now */
    bool database_restored;
    bool reverted; /* health failed and the previous state was put back */
};

/* Carries out the plan (DESIGN §7 steps 2-7). Before the first change it journals a
 * "started" line (FROM -> TO), which the caller's outcome line supersedes; a plan with
 * `resume` runs step 7 only. On a failed health check with auto_revert the previous release
 * (and database, if touched) is put back and -1 is returned. */
int sb_rollback_execute(const struct sb_config *cfg, struct sb_repo *repo,
                        const struct sb_rollback_opts *opts, const struct sb_rollback_plan *plan,
                        struct sb_rollback_result *res, struct sb_error *err);

/* --- prune --- */
struct sb_prune_item {
    char id[32];
    time_t created_at;
    char tag[72];
    bool keep;
    char reasons[96]; /* "newest, last, daily" */
};

struct sb_prune_result {
    struct sb_prune_item *items; /* newest first */
    size_t count;
    size_t removed;           /* snapshots the policy removes */
    size_t snapshots_deleted; /* after execute */
    uint64_t objects_deleted, bytes_freed;
};

struct sb_zone;
/* The retention decision alone: items newest first, created_at and tag set; sets keep and
 * reasons (restic forget semantics; hours, days, weeks... of zone, or of the local time zone
 * when zone is NULL). */
void sb_retention_apply(const struct sb_config *cfg, const struct sb_zone *zone,
                        struct sb_prune_item *items, size_t n);
/* Applies the retention policy (SB_E_CONFIG when it has no rule). Changes nothing. */
int sb_prune_plan(const struct sb_config *cfg, struct sb_repo *repo, struct sb_prune_result *res,
                  struct sb_error *err);
/* Deletes the manifests the plan removes, then every unreferenced object older than the
 * grace period, and stale partial files. */
int sb_prune_execute(struct sb_repo *repo, struct sb_prune_result *res, struct sb_error *err);
void sb_prune_result_release(struct sb_prune_result *res);

struct sb_verify_opts {
    double sample;   /* share of data objects to read, 0 < sample <= 1 (1: all) */
    bool full;       /* also extract trees into a temp dir and count their entries */
    bool restore_db; /* also restore every dump into a scratch database and probe it */
    const struct sb_config *cfg;
};

struct sb_verify_object {
    char *name;
    bool ok;
    bool skipped;    /* not in the sample */
    char probe[256]; /* --restore-db: what the probe returned */
    uint64_t entries;
    uint64_t plain_bytes;
    char error[SB_ERROR_MSG_MAX];
};

/* --restore-db: one configured verify.sql_probe run against one scratch restore. */
struct sb_verify_probe {
    const struct sb_sql_probe *probe; /* borrowed from the config */
    size_t config_idx;                /* its index in verify.sql_probe */
    const char *object;               /* the dump it ran on (borrowed from the result), or NULL */
    bool ok;
    bool skipped;  /* not run; error says why (not in the sample, restore failed, no dump) */
    char got[256]; /* the trimmed first row, when the query succeeded */
    char error[SB_ERROR_MSG_MAX];
};

struct sb_verify_result {
    struct sb_verify_object *objects;
    size_t count;
    struct sb_verify_probe *probes; /* --restore-db only: one per configured probe */
    size_t probe_count;
    size_t failed; /* failed objects plus failed probes */
};

/* Reads every object of the snapshot through the whole chain: size, BLAKE2b, every chunk,
 * TAG_FINAL, zstd, every tar entry; with restore_db, restores every dump into a scratch
 * database, runs the built-in table count and the configured SQL probes on it, and drops it
 * whatever happened. Returns -1 only when it could not run; failures of objects and probes
 * are in res (err is set to the first one: a probe that fails is SB_E_CORRUPT unless the server
 * could not be reached or refused the login). */
int sb_verify_run(struct sb_repo *repo, const struct sb_manifest *m,
                  const struct sb_verify_opts *opts, struct sb_verify_result *res,
                  struct sb_error *err);
void sb_verify_result_release(struct sb_verify_result *res);

#endif
