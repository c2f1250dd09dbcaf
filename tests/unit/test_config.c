/* Tests of the config module: the DESIGN §3 example and small configs parse into the expected
 * struct with the documented defaults; every kind of bad config is refused with SB_E_CONFIG and
 * the exact message naming the JSON path; durations; secret-file permission checks; loading
 * from a file. JSON in the tables is written with ' for " to keep it readable. */
#include "snapback/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"

/* A valid config is APP + REPO + (REL or a database); each bad case breaks one thing. */
#define APP "'app':'shop','key_file':'/etc/snapback/shop.key','state_dir':'/var/lib/snapback/shop'"
#define REPO "'repository':{'url':'/srv/backups'}"
#define REL "'release':{'root':'/srv/shop'}"
#define BASE APP "," REPO "," REL
#define PG "'name':'main','engine':'postgresql','dbname':'shop'"
#define URL_FORMS "file:///path, /path or sftp://user@host[:port]/path"

static const char example_config[] =
    "{\n"
    "  \"app\": \"shop\",\n"
    "  \"release\": { \"root\": \"/srv/shop\", \"releases_dir\": \"releases\", \"current\": "
    "\"current\",\n"
    "               \"shared_paths\": [\"shared/public/uploads\"], \"keep_releases\": 5 },\n"
    "  \"databases\": [\n"
    "    { \"name\": \"main\", \"engine\": \"postgresql\", \"host\": \"/var/run/postgresql\", "
    "\"port\": 5432,\n"
    "      \"dbname\": \"shop\", \"user\": \"shop\", \"password_file\": "
    "\"/etc/snapback/shop.pgpass\" },\n"
    "    { \"name\": \"sessions\", \"engine\": \"sqlite\", \"path\": "
    "\"/srv/shop/shared/db/sessions.sqlite3\" }\n"
    "  ],\n"
    "  \"repository\": { \"url\": \"sftp://backup@backup.example.com:22/srv/backups\",\n"
    "                  \"identity_file\": \"/etc/snapback/id_ed25519\", \"known_hosts\": "
    "\"/etc/snapback/known_hosts\" },\n"
    "  \"key_file\": \"/etc/snapback/shop.key\",\n"
    "  \"state_dir\": \"/var/lib/snapback/shop\",\n"
    "  \"max_age\": \"2h\",\n"
    "  \"compression\": { \"level\": 3, \"threads\": 0 },\n"
    "  \"schedule\": { \"snapshot\": \"0 * * * *\", \"prune\": \"30 3 * * *\", \"verify\": \"0 4 "
    "* * 0\" },\n"
    "  \"retention\": { \"keep_last\": 24, \"keep_daily\": 7, \"keep_weekly\": 4, "
    "\"keep_monthly\": 12 },\n"
    "  \"rollback\": { \"database\": \"never\", \"auto_revert\": true, \"health_timeout_s\": 60 "
    "},\n"
    "  \"hooks\": { \"before_rollback\": [\"/srv/shop/bin/maintenance\", \"on\"],\n"
    "             \"after_rollback\": \"systemctl restart shop\",\n"
    "             \"health_check\": \"curl -fsS http://127.0.0.1:3000/health\",\n"
    "             \"on_error\": \"/etc/snapback/hooks/notify\" },\n"
    "  \"metrics_file\": \"/var/lib/prometheus/node-exporter/snapback_shop.prom\"\n"
    "}\n";

/* Returns a malloc'd copy of text with every ' turned into ". */
static char *
quoted(const char *text)
{
    size_t len = strlen(text);
    char *out = malloc(len + 1);

    if (!out)
        abort();
    for (size_t pos = 0; pos <= len; pos++)
        out[pos] = text[pos] == '\'' ? '"' : text[pos];
    return out;
}

/* Parses JSON written with ' for "; the result must be freed with sb_config_free. */
static int
parse_q(const char *text, struct sb_config **out, struct sb_error *err)
{
    char *json = quoted(text);
    int rc = sb_config_parse(json, strlen(json), "test.json", out, err);

    free(json);
    return rc;
}

static void
test_example(void)
{
    struct sb_error err = SB_ERROR_INIT;
    struct sb_config *cfg = NULL;

    EXPECT_OK(sb_config_parse(example_config, strlen(example_config), "/etc/snapback/shop.json",
                              &cfg, &err),
              &err);
    if (!cfg)
        return;
    EXPECT_STR(cfg->source_path, "/etc/snapback/shop.json");
    EXPECT_STR(cfg->app, "shop");

    EXPECT(cfg->has_release);
    EXPECT_STR(cfg->release.root, "/srv/shop");
    EXPECT_STR(cfg->release.releases_dir, "releases");
    EXPECT_STR(cfg->release.current, "current");
    EXPECT_INT(cfg->release.shared_count, 1);
    EXPECT_STR(cfg->release.shared_paths[0], "shared/public/uploads");
    EXPECT(cfg->release.shared_paths[1] == NULL);
    EXPECT_INT(cfg->release.keep_releases, 5);

    EXPECT_INT(cfg->database_count, 2);
    if (cfg->database_count == 2) {
        const struct sb_db_config *pg = &cfg->databases[0], *lite = &cfg->databases[1];
        EXPECT_STR(pg->name, "main");
        EXPECT_INT(pg->engine, SB_DB_POSTGRESQL);
        EXPECT_STR(pg->host, "/var/run/postgresql");
        EXPECT_INT(pg->port, 5432);
        EXPECT_STR(pg->dbname, "shop");
        EXPECT_STR(pg->user, "shop");
        EXPECT_STR(pg->password_file, "/etc/snapback/shop.pgpass");
        EXPECT(pg->path == NULL);
        EXPECT_STR(lite->name, "sessions");
        EXPECT_INT(lite->engine, SB_DB_SQLITE);
        EXPECT_STR(lite->path, "/srv/shop/shared/db/sessions.sqlite3");
        EXPECT(lite->host == NULL && lite->dbname == NULL && lite->user == NULL);
        EXPECT(lite->password_file == NULL);
        EXPECT_INT(lite->port, 0);
    }

    EXPECT_STR(cfg->repository.url, "sftp://backup@backup.example.com:22/srv/backups");
    EXPECT(cfg->repository.is_sftp);
    EXPECT_STR(cfg->repository.sftp_user, "backup");
    EXPECT_STR(cfg->repository.sftp_host, "backup.example.com");
    EXPECT_INT(cfg->repository.sftp_port, 22);
    EXPECT_STR(cfg->repository.path, "/srv/backups");
    EXPECT_STR(cfg->repository.identity_file, "/etc/snapback/id_ed25519");
    EXPECT_STR(cfg->repository.known_hosts, "/etc/snapback/known_hosts");

    EXPECT_STR(cfg->key_file, "/etc/snapback/shop.key");
    EXPECT(cfg->recipient == NULL);
    EXPECT_STR(cfg->state_dir, "/var/lib/snapback/shop");
    EXPECT_INT(cfg->max_age_s, 7200);
    EXPECT_INT(cfg->compression.level, 3);
    EXPECT_INT(cfg->compression.threads, 0);

    EXPECT_STR(cfg->schedule.snapshot, "0 * * * *");
    EXPECT_STR(cfg->schedule.prune, "30 3 * * *");
    EXPECT_STR(cfg->schedule.verify, "0 4 * * 0");

    EXPECT_INT(cfg->retention.keep_last, 24);
    EXPECT_INT(cfg->retention.keep_hourly, 0);
    EXPECT_INT(cfg->retention.keep_daily, 7);
    EXPECT_INT(cfg->retention.keep_weekly, 4);
    EXPECT_INT(cfg->retention.keep_monthly, 12);
    EXPECT_INT(cfg->retention.keep_yearly, 0);
    EXPECT_INT(cfg->retention.keep_within_s, 0);

    EXPECT_INT(cfg->rollback.database, SB_ROLLBACK_DB_NEVER);
    EXPECT(cfg->rollback.auto_revert);
    EXPECT_INT(cfg->rollback.health_timeout_s, 60);

    EXPECT(!cfg->hooks.before_snapshot.present);
    EXPECT(!cfg->hooks.after_snapshot.present);
    EXPECT(cfg->hooks.before_rollback.present);
    EXPECT(cfg->hooks.before_rollback.shell == NULL);
    if (cfg->hooks.before_rollback.argv) {
        EXPECT_STR(cfg->hooks.before_rollback.argv[0], "/srv/shop/bin/maintenance");
        EXPECT_STR(cfg->hooks.before_rollback.argv[1], "on");
        EXPECT(cfg->hooks.before_rollback.argv[2] == NULL);
    } else {
        EXPECT(cfg->hooks.before_rollback.argv != NULL);
    }
    EXPECT(cfg->hooks.after_rollback.present && cfg->hooks.after_rollback.argv == NULL);
    EXPECT_STR(cfg->hooks.after_rollback.shell, "systemctl restart shop");
    EXPECT_STR(cfg->hooks.health_check.shell, "curl -fsS http://127.0.0.1:3000/health");
    EXPECT_STR(cfg->hooks.on_error.shell, "/etc/snapback/hooks/notify");
    EXPECT_INT(cfg->hooks.timeout_s, 300);
    EXPECT_STR(cfg->metrics_file, "/var/lib/prometheus/node-exporter/snapback_shop.prom");
    sb_config_free(cfg);
}

static void
test_minimal_defaults(void)
{
    struct sb_error err = SB_ERROR_INIT;
    struct sb_config *cfg = NULL;

    EXPECT_OK(parse_q("{" BASE "}", &cfg, &err), &err);
    if (!cfg)
        return;
    EXPECT_STR(cfg->app, "shop");
    EXPECT_STR(cfg->source_path, "test.json");
    EXPECT(cfg->has_release);
    EXPECT_STR(cfg->release.root, "/srv/shop");
    EXPECT_STR(cfg->release.releases_dir, "releases");
    EXPECT_STR(cfg->release.current, "current");
    EXPECT(cfg->release.shared_paths != NULL && cfg->release.shared_paths[0] == NULL);
    EXPECT_INT(cfg->release.shared_count, 0);
    EXPECT_INT(cfg->release.keep_releases, 5);
    EXPECT(cfg->databases == NULL);
    EXPECT_INT(cfg->database_count, 0);
    EXPECT(!cfg->repository.is_sftp);
    EXPECT_STR(cfg->repository.url, "/srv/backups");
    EXPECT_STR(cfg->repository.path, "/srv/backups");
    EXPECT(cfg->repository.sftp_user == NULL && cfg->repository.sftp_host == NULL);
    EXPECT_INT(cfg->repository.sftp_port, 0);
    EXPECT(cfg->repository.identity_file == NULL && cfg->repository.known_hosts == NULL);
    EXPECT(cfg->repository.identity_passphrase_file == NULL);
    EXPECT_INT(cfg->repository.timeout_s, 30);
    EXPECT_INT(cfg->repository.retries, 5);
    EXPECT_INT(cfg->max_age_s, 0);
    EXPECT_INT(cfg->compression.level, 3);
    EXPECT_INT(cfg->compression.threads, 0);
    EXPECT(cfg->schedule.snapshot == NULL && cfg->schedule.prune == NULL);
    EXPECT(cfg->schedule.verify == NULL);
    EXPECT_INT(cfg->retention.keep_last, 0);
    EXPECT_INT(cfg->retention.keep_within_s, 0);
    EXPECT_INT(cfg->rollback.database, SB_ROLLBACK_DB_NEVER);
    EXPECT(cfg->rollback.auto_revert);
    EXPECT_INT(cfg->rollback.health_timeout_s, 60);
    EXPECT(!cfg->hooks.on_error.present && cfg->hooks.on_error.shell == NULL);
    EXPECT(cfg->hooks.on_error.argv == NULL);
    EXPECT_INT(cfg->hooks.timeout_s, 300);
    EXPECT(cfg->metrics_file == NULL);
    sb_config_free(cfg);
}

static void
test_database_only(void)
{
    struct sb_error err = SB_ERROR_INIT;
    struct sb_config *cfg = NULL;

    EXPECT_OK(parse_q("{'app':'shop','recipient':'/etc/snapback/shop.pub','state_dir':'/s',"
                      "'repository':{'url':'file:///srv/backups'},'databases':[{'name':'db-1',"
                      "'engine':'mysql','dbname':'shop'}],'retention':{'keep_within':'2w'},"
                      "'rollback':{'database':'ask','auto_revert':false,'health_timeout_s':5},"
                      "'hooks':{'on_error':['/bin/notify'],'timeout_s':30}}",
                      &cfg, &err),
              &err);
    if (!cfg)
        return;
    EXPECT(!cfg->has_release);
    EXPECT(cfg->release.root == NULL && cfg->release.shared_paths == NULL);
    EXPECT(cfg->key_file == NULL);
    EXPECT_STR(cfg->recipient, "/etc/snapback/shop.pub");
    EXPECT(cfg->old_key_files == NULL && cfg->old_key_count == 0);
    EXPECT_STR(cfg->repository.path, "/srv/backups");
    EXPECT(!cfg->repository.is_sftp);
    EXPECT_INT(cfg->database_count, 1);
    EXPECT_INT(cfg->databases[0].engine, SB_DB_MYSQL);
    EXPECT_STR(cfg->databases[0].name, "db-1");
    EXPECT(cfg->databases[0].host == NULL && cfg->databases[0].port == 0);
    EXPECT_INT(cfg->retention.keep_within_s, 14 * 86400);
    EXPECT_INT(cfg->rollback.database, SB_ROLLBACK_DB_ASK);
    EXPECT(!cfg->rollback.auto_revert);
    EXPECT_INT(cfg->rollback.health_timeout_s, 5);
    EXPECT(cfg->hooks.on_error.present && cfg->hooks.on_error.argv != NULL);
    EXPECT_INT(cfg->hooks.timeout_s, 30);
    sb_config_free(cfg);

    /* A release with an empty databases array is fine too. */
    EXPECT_OK(parse_q("{" BASE ",'databases':[]}", &cfg, &err), &err);
    if (cfg)
        EXPECT_INT(cfg->database_count, 0);
    sb_config_free(cfg);
    cfg = NULL;
    /* names that share a prefix are not nested */
    EXPECT_OK(parse_q("{" APP "," REPO
                      ",'release':{'root':'/srv/shop','shared_paths':['ab','a','a-b','b/a']}}",
                      &cfg, &err),
              &err);
    if (cfg)
        EXPECT_INT(cfg->release.shared_count, 4);
    sb_config_free(cfg);
}

static void
test_repository_urls(void)
{
    static const struct {
        const char *url;
        bool is_sftp;
        const char *user, *host;
        int port;
        const char *path;
    } cases[] = {
        {"/srv/backups", false, NULL, NULL, 0, "/srv/backups"},
        {"file:///srv/backups", false, NULL, NULL, 0, "/srv/backups"},
        {"sftp://backup@host.example/srv/b", true, "backup", "host.example", 22, "/srv/b"},
        {"sftp://backup@10.0.0.1:2222/b", true, "backup", "10.0.0.1", 2222, "/b"},
        {"sftp://u@[::1]:65535/x/y", true, "u", "::1", 65535, "/x/y"},
        {"sftp://u@[fe80::1]/x", true, "u", "fe80::1", 22, "/x"},
        /* curl's form for the login's home: a relative path, which the server resolves */
        {"sftp://u@host/~/backups/shop", true, "u", "host", 22, "backups/shop"},
        {"sftp://u@host/~/", true, "u", "host", 22, "."},
        {"sftp://u@host:2222/~", true, "u", "host", 2222, "."},
        {"sftp://u@host/x/~/y", true, "u", "host", 22, "/x/~/y"},
        {"SFTP://u@h/x", true, "u", "h", 22, "/x"},
    };
    for (size_t case_idx = 0; case_idx < sizeof(cases) / sizeof(cases[0]); case_idx++) {
        struct sb_error err = SB_ERROR_INIT;
        struct sb_config *cfg = NULL;
        char json[512];

        snprintf(json, sizeof(json), "{" APP "," REL ",'repository':{'url':'%s'}}",
                 cases[case_idx].url);
        EXPECT_OK(parse_q(json, &cfg, &err), &err);
        if (!cfg)
            continue;
        EXPECT_STR(cfg->repository.url, cases[case_idx].url);
        EXPECT_INT(cfg->repository.is_sftp, cases[case_idx].is_sftp);
        if (cases[case_idx].user)
            EXPECT_STR(cfg->repository.sftp_user, cases[case_idx].user);
        else
            EXPECT(cfg->repository.sftp_user == NULL);
        if (cases[case_idx].host)
            EXPECT_STR(cfg->repository.sftp_host, cases[case_idx].host);
        else
            EXPECT(cfg->repository.sftp_host == NULL);
        EXPECT_INT(cfg->repository.sftp_port, cases[case_idx].port);
        EXPECT_STR(cfg->repository.path, cases[case_idx].path);
        sb_config_free(cfg);
    }
}

static void
test_bad_configs(void)
{
    static const struct {
        const char *json;
        const char *msg;
    } cases[] = {
        /* the document */
        {"", "empty file, expected a JSON object"},
        {" \n\t ", "empty file, expected a JSON object"},
        {"[]", "expected a JSON object at the top level"},
        {"'shop'", "expected a JSON object at the top level"},
        {"{'app':'shop',}", "invalid JSON near line 1 column 15"},
        {"{'app':'shop'} x", "invalid JSON near line 1 column 16"},
        {"{'app' 'shop'}", "invalid JSON near line 1 column 8"},
        {"{'app':'shop'", "invalid JSON near line 1 column 13"},
        {"{\n  'app': 'shop',\n}\n\n", "invalid JSON near line 3 column 1"},
        {"{'app':01x}", "invalid JSON near line 1 column 10"},
        {"{'app':'a\\u0000b'}", "line 1 column 10: NUL characters are not allowed"},
        /* top level */
        {"{}", "app: required key is missing"},
        {"{" BASE ",'frobnicate':1}", "frobnicate: unknown key"},
        {"{" BASE ",'App':'x'}", "App: unknown key"},
        {"{" BASE ",'':1}", "\"\": unknown key"},
        {"{" BASE ",'a\\nb':1}", "a?b: unknown key"},
        {"{" BASE ",'app':'shop'}", "app: duplicate key"},
        {"{'app':'','key_file':'/k','state_dir':'/s'," REPO "," REL "}",
         "app: expected a name of 1 to 64 letters, digits, '.', '_' or '-' that does not start "
         "with '.'"},
        {"{'app':'.shop','key_file':'/k','state_dir':'/s'," REPO "," REL "}",
         "app: expected a name of 1 to 64 letters, digits, '.', '_' or '-' that does not start "
         "with '.'"},
        {"{'app':'my shop','key_file':'/k','state_dir':'/s'," REPO "," REL "}",
         "app: expected a name of 1 to 64 letters, digits, '.', '_' or '-' that does not start "
         "with '.'"},
        {"{'app':42,'key_file':'/k','state_dir':'/s'," REPO "," REL "}",
         "app: expected a name of 1 to 64 letters, digits, '.', '_' or '-' that does not start "
         "with '.'"},
        {"{'app':'a12345678901234567890123456789012345678901234567890123456789012345',"
         "'key_file':'/k','state_dir':'/s'," REPO "," REL "}",
         "app: expected a name of 1 to 64 letters, digits, '.', '_' or '-' that does not start "
         "with '.'"},
        {"{" APP "," REPO "}", "release: a config needs a release or at least one database"},
        {"{" APP "," REPO ",'databases':[]}",
         "release: a config needs a release or at least one database"},
        {"{" APP "," REL "}", "repository: required key is missing"},
        {"{'app':'shop','state_dir':'/s'," REPO "," REL "}",
         "key_file: required key is missing (or recipient, on a write-only host)"},
        {"{" BASE ",'recipient':'/etc/snapback/shop.pub'}",
         "recipient: not allowed together with key_file"},
        {"{" BASE ",'old_key_files':'/etc/old.key'}",
         "old_key_files: expected an array of absolute paths"},
        {"{" BASE ",'old_key_files':['/etc/old.key','old2.key']}",
         "old_key_files[1]: expected an absolute path"},
        {"{'app':'shop','key_file':'etc/k','state_dir':'/s'," REPO "," REL "}",
         "key_file: expected an absolute path"},
        {"{'app':'shop','key_file':'/k'," REPO "," REL "}", "state_dir: required key is missing"},
        {"{'app':'shop','key_file':'/k','state_dir':'var/lib'," REPO "," REL "}",
         "state_dir: expected an absolute path"},
        {"{'app':'shop','key_file':'/k','state_dir':null," REPO "," REL "}",
         "state_dir: expected an absolute path"},
        {"{" BASE ",'metrics_file':'snapback.prom'}", "metrics_file: expected an absolute path"},
        {"{" BASE ",'max_age':'2 hours'}", "max_age: expected a duration like 90m, 2h or 1d"},
        {"{" BASE ",'max_age':7200}", "max_age: expected a duration like 90m, 2h or 1d"},
        /* release */
        {"{" APP "," REPO ",'release':'/srv/shop'}", "release: expected an object"},
        {"{" APP "," REPO ",'release':{}}", "release.root: required key is missing"},
        {"{" APP "," REPO ",'release':{'root':'/srv/shop','frobnicate':1}}",
         "release.frobnicate: unknown key"},
        {"{" APP "," REPO ",'release':{'root':'srv/shop'}}",
         "release.root: expected an absolute path"},
        {"{" APP "," REPO ",'release':{'root':'/srv/shop','keep_releases':0}}",
         "release.keep_releases: expected an integer >= 1"},
        {"{" APP "," REPO ",'release':{'root':'/srv/shop','keep_releases':2.5}}",
         "release.keep_releases: expected an integer >= 1"},
        {"{" APP "," REPO ",'release':{'root':'/srv/shop','keep_releases':'5'}}",
         "release.keep_releases: expected an integer >= 1"},
        {"{" APP "," REPO ",'release':{'root':'/srv/shop','keep_releases':1e300}}",
         "release.keep_releases: expected an integer >= 1"},
        {"{" APP "," REPO ",'release':{'root':'/srv/shop','releases_dir':'/srv/releases'}}",
         "release.releases_dir: must be relative to release.root, not absolute"},
        {"{" APP "," REPO ",'release':{'root':'/srv/shop','current':'../current'}}",
         "release.current: must not contain '.', '..' or empty components"},
        {"{" APP "," REPO ",'release':{'root':'/srv/shop','current':'releases'}}",
         "release.current: must differ from release.releases_dir"},
        {"{" APP "," REPO ",'release':{'root':'/srv/shop','shared_paths':'shared'}}",
         "release.shared_paths: expected an array of relative paths"},
        {"{" APP "," REPO ",'release':{'root':'/srv/shop','shared_paths':['']}}",
         "release.shared_paths[0]: expected a relative path"},
        {"{" APP "," REPO ",'release':{'root':'/srv/shop','shared_paths':['a',7]}}",
         "release.shared_paths[1]: expected a relative path"},
        {"{" APP "," REPO ",'release':{'root':'/srv/shop','shared_paths':['a/../../etc']}}",
         "release.shared_paths[0]: must not contain '.', '..' or empty components"},
        {"{" APP "," REPO ",'release':{'root':'/srv/shop','shared_paths':['shared/']}}",
         "release.shared_paths[0]: must not contain '.', '..' or empty components"},
        {"{" APP "," REPO ",'release':{'root':'/srv/shop','shared_paths':['a','b','a']}}",
         "release.shared_paths[2]: duplicate path 'a'"},
        {"{" APP "," REPO ",'release':{'root':'/srv/shop','shared_paths':['shared/x','shared']}}",
         "release.shared_paths[1]: 'shared' and 'shared/x' (shared_paths[0]) are nested; list "
         "only the outer one"},
        {"{" APP "," REPO ",'release':{'root':'/srv/shop','shared_paths':['a','a/b/c']}}",
         "release.shared_paths[1]: 'a/b/c' and 'a' (shared_paths[0]) are nested; list only the "
         "outer one"},
        /* databases */
        {"{" APP "," REPO ",'databases':{}}", "databases: expected an array of objects"},
        {"{" APP "," REPO ",'databases':[5]}", "databases[0]: expected an object"},
        {"{" APP "," REPO ",'databases':[{'engine':'sqlite','path':'/d'}]}",
         "databases[0].name: required key is missing"},
        {"{" APP "," REPO ",'databases':[{'name':'my db','engine':'sqlite','path':'/d'}]}",
         "databases[0].name: expected a name of 1 to 64 letters, digits, '_' or '-'"},
        {"{" APP "," REPO ",'databases':[{'name':'main.db','engine':'sqlite','path':'/d'}]}",
         "databases[0].name: expected a name of 1 to 64 letters, digits, '_' or '-'"},
        {"{" APP "," REPO ",'databases':[{" PG "},{'name':'x','engine':'oracle'}]}",
         "databases[1].engine: expected one of postgresql, mysql, sqlite"},
        {"{" APP "," REPO ",'databases':[{'name':'x'}]}",
         "databases[0].engine: required key is missing"},
        {"{" APP "," REPO ",'databases':[{" PG "},{'name':'b','engine':'sqlite','path':'/d'},"
         "{" PG "}]}",
         "databases[2].name: duplicate name 'main'"},
        {"{" APP "," REPO ",'databases':[{'name':'s','engine':'sqlite','path':'/d','host':'h'}]}",
         "databases[0].host: not valid for engine sqlite"},
        {"{" APP "," REPO ",'databases':[{'name':'s','engine':'sqlite','path':'/d','user':'u'}]}",
         "databases[0].user: not valid for engine sqlite"},
        {"{" APP "," REPO ",'databases':[{'name':'s','engine':'sqlite'}]}",
         "databases[0].path: required key is missing"},
        {"{" APP "," REPO ",'databases':[{'name':'s','engine':'sqlite','path':'db.sqlite3'}]}",
         "databases[0].path: expected an absolute path"},
        {"{" APP "," REPO ",'databases':[{'name':'m','engine':'postgresql'}]}",
         "databases[0].dbname: required key is missing"},
        {"{" APP "," REPO ",'databases':[{" PG ",'path':'/d'}]}",
         "databases[0].path: not valid for engine postgresql"},
        {"{" APP "," REPO ",'databases':[{" PG ",'port':70000}]}",
         "databases[0].port: expected an integer between 1 and 65535"},
        {"{" APP "," REPO ",'databases':[{" PG ",'port':'5432'}]}",
         "databases[0].port: expected an integer between 1 and 65535"},
        {"{" APP "," REPO ",'databases':[{" PG ",'host':''}]}",
         "databases[0].host: expected a non-empty string"},
        {"{" APP "," REPO ",'databases':[{" PG ",'password_file':'pgpass'}]}",
         "databases[0].password_file: expected an absolute path"},
        {"{" APP "," REPO ",'databases':[{" PG ",'password':'hunter2'}]}",
         "databases[0].password: unknown key"},
        /* repository */
        {"{" APP "," REL ",'repository':'/srv/backups'}", "repository: expected an object"},
        {"{" APP "," REL ",'repository':{}}", "repository.url: required key is missing"},
        {"{" APP "," REL ",'repository':{'url':'/b','user':'x'}}", "repository.user: unknown key"},
        {"{" APP "," REL ",'repository':{'url':''}}", "repository.url: expected " URL_FORMS},
        {"{" APP "," REL ",'repository':{'url':'http://example.com/b'}}",
         "repository.url: unsupported scheme 'http'; use " URL_FORMS},
        {"{" APP "," REL ",'repository':{'url':'backups'}}",
         "repository.url: a local path must be absolute; use " URL_FORMS},
        {"{" APP "," REL ",'repository':{'url':'file://host/b'}}",
         "repository.url: expected file:///absolute/path"},
        {"{" APP "," REL ",'repository':{'url':'sftp:host/b'}}",
         "repository.url: expected sftp://user@host[:port]/path"},
        {"{" APP "," REL ",'repository':{'url':'sftp://host.example/b'}}",
         "repository.url: sftp URL needs a user: sftp://user@host[:port]/path"},
        {"{" APP "," REL ",'repository':{'url':'sftp://u@/b'}}",
         "repository.url: sftp URL needs a host: sftp://user@host[:port]/path"},
        {"{" APP "," REL ",'repository':{'url':'sftp://u@host'}}",
         "repository.url: sftp URL needs a path: sftp://user@host[:port]/path"},
        {"{" APP "," REL ",'repository':{'url':'sftp://u@host/'}}",
         "repository.url: sftp URL needs a path: sftp://user@host[:port]/path"},
        {"{" APP "," REL ",'repository':{'url':'sftp://u@host/~bob/b'}}",
         "repository.url: '/~bob/b': a path in another user's home is not supported; use /~/DIR "
         "for the login's home, or an absolute path"},
        {"{" APP "," REL ",'repository':{'url':'sftp://u@host:0/b'}}",
         "repository.url: port '0' is not a number between 1 and 65535"},
        {"{" APP "," REL ",'repository':{'url':'sftp://u@host:65536/b'}}",
         "repository.url: port '65536' is not a number between 1 and 65535"},
        {"{" APP "," REL ",'repository':{'url':'sftp://u@host:ssh/b'}}",
         "repository.url: port 'ssh' is not a number between 1 and 65535"},
        {"{" APP "," REL ",'repository':{'url':'sftp://u:secret@host/b'}}",
         "repository.url: a password in the URL is not allowed; use repository.identity_file"},
        {"{" APP "," REL ",'repository':{'url':'sftp://u@ho st/b'}}",
         "repository.url: invalid host 'ho st'"},
        {"{" APP "," REL ",'repository':{'url':'sftp://u@[::1/b'}}",
         "repository.url: unterminated '[' in the host of the URL"},
        {"{" APP "," REL ",'repository':{'url':'sftp://u@h/b','identity_file':'id_ed25519'}}",
         "repository.identity_file: expected an absolute path"},
        {"{" APP "," REL ",'repository':{'url':'sftp://u@h/b','known_hosts':false}}",
         "repository.known_hosts: expected an absolute path"},
        {"{" APP "," REL ",'repository':{'url':'sftp://u@h/b','identity_file':'/k',"
         "'identity_passphrase_file':'pass'}}",
         "repository.identity_passphrase_file: expected an absolute path"},
        {"{" APP "," REL ",'repository':{'url':'sftp://u@h/b','identity_passphrase_file':'/p'}}",
         "repository.identity_passphrase_file: needs repository.identity_file"},
        {"{" APP "," REL ",'repository':{'url':'sftp://u@h/b','timeout_s':0}}",
         "repository.timeout_s: expected an integer between 1 and 3600"},
        {"{" APP "," REL ",'repository':{'url':'sftp://u@h/b','timeout_s':3601}}",
         "repository.timeout_s: expected an integer between 1 and 3600"},
        {"{" APP "," REL ",'repository':{'url':'sftp://u@h/b','timeout_s':'30'}}",
         "repository.timeout_s: expected an integer between 1 and 3600"},
        {"{" APP "," REL ",'repository':{'url':'sftp://u@h/b','timeout_s':2.5}}",
         "repository.timeout_s: expected an integer between 1 and 3600"},
        {"{" APP "," REL ",'repository':{'url':'sftp://u@h/b','retries':-1}}",
         "repository.retries: expected an integer between 0 and 20"},
        {"{" APP "," REL ",'repository':{'url':'sftp://u@h/b','retries':21}}",
         "repository.retries: expected an integer between 0 and 20"},
        {"{" APP "," REL ",'repository':{'url':'sftp://u@h/b','retries':null}}",
         "repository.retries: expected an integer between 0 and 20"},
        {"{" APP "," REL ",'repository':{'url':'sftp://u@h/b','retries':1,'retries':2}}",
         "repository.retries: duplicate key"},
        /* compression, schedule, retention, rollback */
        {"{" BASE ",'compression':{'level':20}}",
         "compression.level: expected an integer between 1 and 19"},
        {"{" BASE ",'compression':{'level':0}}",
         "compression.level: expected an integer between 1 and 19"},
        {"{" BASE ",'compression':{'threads':-1}}",
         "compression.threads: expected an integer between 0 and 256"},
        {"{" BASE ",'compression':{'algorithm':'zstd'}}", "compression.algorithm: unknown key"},
        {"{" BASE ",'schedule':'hourly'}", "schedule: expected an object"},
        {"{" BASE ",'schedule':{'snapshot':5}}",
         "schedule.snapshot: expected a cron expression like '0 * * * *'"},
        {"{" BASE ",'schedule':{'backup':'@hourly'}}", "schedule.backup: unknown key"},
        {"{" BASE ",'schedule':{'timezone':'Mars/Olympus_Mons'}}",
         "schedule.timezone: unknown time zone 'Mars/Olympus_Mons' (no such zone file under "
         "/usr/share/zoneinfo; use an IANA name like 'Europe/Berlin', or install tzdata)"},
        {"{" BASE ",'schedule':{'timezone':'../../etc/passwd'}}",
         "schedule.timezone: unknown time zone '../../etc/passwd' (no such zone file under "
         "/usr/share/zoneinfo; use an IANA name like 'Europe/Berlin', or install tzdata)"},
        {"{" BASE ",'schedule':{'timezone':'/usr/share/zoneinfo/UTC'}}",
         "schedule.timezone: unknown time zone '/usr/share/zoneinfo/UTC' (no such zone file "
         "under /usr/share/zoneinfo; use an IANA name like 'Europe/Berlin', or install tzdata)"},
        {"{" BASE ",'schedule':{'timezone':'Europe'}}",
         "schedule.timezone: unknown time zone 'Europe' (no such zone file under "
         "/usr/share/zoneinfo; use an IANA name like 'Europe/Berlin', or install tzdata)"},
        {"{" BASE ",'schedule':{'timezone':''}}",
         "schedule.timezone: expected a time zone name like 'Europe/Berlin'"},
        {"{" BASE ",'schedule':{'timezone':1}}",
         "schedule.timezone: expected a time zone name like 'Europe/Berlin'"},
        {"{" BASE ",'schedule':{'jitter':'2h'}}",
         "schedule.jitter: expected a duration from 0 to 1h like '30s' or '5m' (each fire is "
         "delayed by a random amount up to it)"},
        {"{" BASE ",'schedule':{'jitter':'3601s'}}",
         "schedule.jitter: expected a duration from 0 to 1h like '30s' or '5m' (each fire is "
         "delayed by a random amount up to it)"},
        {"{" BASE ",'schedule':{'jitter':'-5m'}}",
         "schedule.jitter: expected a duration from 0 to 1h like '30s' or '5m' (each fire is "
         "delayed by a random amount up to it)"},
        {"{" BASE ",'schedule':{'jitter':'soon'}}",
         "schedule.jitter: expected a duration from 0 to 1h like '30s' or '5m' (each fire is "
         "delayed by a random amount up to it)"},
        {"{" BASE ",'schedule':{'jitter':300}}",
         "schedule.jitter: expected a duration from 0 to 1h like '30s' or '5m' (each fire is "
         "delayed by a random amount up to it)"},
        {"{" BASE ",'retention':{'keep_daily':-1}}",
         "retention.keep_daily: expected an integer >= 0"},
        {"{" BASE ",'retention':{'keep_within':'forever'}}",
         "retention.keep_within: expected a duration like 90m, 2h or 1d"},
        {"{" BASE ",'retention':{'keep_hourly':24,'keep_last':1,'keep_hourly':1}}",
         "retention.keep_hourly: duplicate key"},
        {"{" BASE ",'rollback':{'database':'sometimes'}}",
         "rollback.database: expected one of never, ask, always"},
        {"{" BASE ",'rollback':{'auto_revert':'yes'}}",
         "rollback.auto_revert: expected true or false"},
        {"{" BASE ",'rollback':{'health_timeout_s':0}}",
         "rollback.health_timeout_s: expected an integer between 1 and 86400"},
        /* hooks */
        {"{" BASE ",'hooks':{'after_rollback':''}}",
         "hooks.after_rollback: expected a command: a non-empty string or array of strings"},
        {"{" BASE ",'hooks':{'before_rollback':[]}}",
         "hooks.before_rollback: expected a command: a non-empty string or array of strings"},
        {"{" BASE ",'hooks':{'on_error':{'run':'x'}}}",
         "hooks.on_error: expected a command: a non-empty string or array of strings"},
        {"{" BASE ",'hooks':{'before_rollback':['/bin/maint',1]}}",
         "hooks.before_rollback[1]: expected a non-empty string"},
        {"{" BASE ",'hooks':{'timeout_s':0}}",
         "hooks.timeout_s: expected an integer between 1 and 86400"},
        {"{" BASE ",'hooks':{'on_failure':'x'}}", "hooks.on_failure: unknown key"},
        /* verify (issue #7) */
        {"{" BASE ",'verify':[]}", "verify: expected an object"},
        {"{" BASE ",'verify':{'probes':[]}}", "verify.probes: unknown key"},
        {"{" BASE ",'verify':{'sql_probe':{'database':'main'}}}",
         "verify.sql_probe: expected an array of objects"},
        {"{" BASE ",'databases':[{" PG "}],'verify':{'sql_probe':['SELECT 1']}}",
         "verify.sql_probe[0]: expected an object with database, sql and expect"},
        {"{" BASE ",'databases':[{" PG "}],'verify':{'sql_probe':[{'sql':'SELECT 1'}]}}",
         "verify.sql_probe[0].database: required key is missing"},
        {"{" BASE ",'databases':[{" PG "}],'verify':{'sql_probe':[{'database':5,'sql':'S'}]}}",
         "verify.sql_probe[0].database: expected a non-empty string"},
        {"{" BASE ",'databases':[{" PG "}],'verify':{'sql_probe':[{'database':'main','sql':'S'},"
         "{'database':'shop','sql':'S'}]}}",
         "verify.sql_probe[1].database: no database named 'shop' in databases"},
        {"{" BASE ",'verify':{'sql_probe':[{'database':'main','sql':'S'}]}}",
         "verify.sql_probe[0].database: no database named 'main' in databases"},
        {"{" BASE ",'databases':[{" PG "}],'verify':{'sql_probe':[{'database':'main'}]}}",
         "verify.sql_probe[0].sql: required key is missing"},
        {"{" BASE ",'databases':[{" PG "}],'verify':{'sql_probe':[{'database':'main','sql':''}]}}",
         "verify.sql_probe[0].sql: expected a non-empty string"},
        {"{" BASE ",'databases':[{" PG
         "}],'verify':{'sql_probe':[{'database':'main','sql':['S']}]}}",
         "verify.sql_probe[0].sql: expected a non-empty string"},
        {"{" BASE ",'databases':[{" PG "}],'verify':{'sql_probe':[{'database':'main','sql':'S',"
         "'expect':1000}]}}",
         "verify.sql_probe[0].expect: expected a string (the first row of the result, compared as "
         "text)"},
        {"{" BASE ",'databases':[{" PG "}],'verify':{'sql_probe':[{'database':'main','sql':'S',"
         "'expect':null}]}}",
         "verify.sql_probe[0].expect: expected a string (the first row of the result, compared as "
         "text)"},
        {"{" BASE ",'databases':[{" PG "}],'verify':{'sql_probe':[{'database':'main','sql':'S',"
         "'timeout_s':5}]}}",
         "verify.sql_probe[0].timeout_s: unknown key"},
        {"{" BASE ",'databases':[{" PG "}],'verify':{'sql_probe':[{'database':'main','sql':'S',"
         "'sql':'T'}]}}",
         "verify.sql_probe[0].sql: duplicate key"},
    };
    for (size_t case_idx = 0; case_idx < sizeof(cases) / sizeof(cases[0]); case_idx++) {
        struct sb_error err = SB_ERROR_INIT;
        static struct sb_config sentinel;
        struct sb_config *cfg = &sentinel; /* must be reset to NULL */

        EXPECT_ERR(parse_q(cases[case_idx].json, &cfg, &err), &err, SB_E_CONFIG,
                   cases[case_idx].msg);
        EXPECT(cfg == NULL);
        if (err.code != SB_E_CONFIG || strcmp(err.msg, cases[case_idx].msg) != 0)
            printf("    (case %zu: %s)\n", case_idx, cases[case_idx].json);
    }
}

/* The connection keys of an SFTP repository: all set, and the edges of their ranges. */
static void
test_repository_sftp_options(void)
{
    struct sb_error err = SB_ERROR_INIT;
    struct sb_config *cfg = NULL;

    EXPECT_OK(parse_q("{" APP "," REL ",'repository':{'url':'sftp://backup@10.0.0.5:2222/b',"
                      "'identity_file':'/etc/snapback/id_ed25519','identity_passphrase_file':"
                      "'/etc/snapback/id_ed25519.pass','known_hosts':'/etc/snapback/known_hosts',"
                      "'timeout_s':3600,'retries':0}}",
                      &cfg, &err),
              &err);
    if (cfg) {
        EXPECT(cfg->repository.is_sftp);
        EXPECT_INT(cfg->repository.sftp_port, 2222);
        EXPECT_STR(cfg->repository.identity_file, "/etc/snapback/id_ed25519");
        EXPECT_STR(cfg->repository.identity_passphrase_file, "/etc/snapback/id_ed25519.pass");
        EXPECT_STR(cfg->repository.known_hosts, "/etc/snapback/known_hosts");
        EXPECT_INT(cfg->repository.timeout_s, 3600);
        EXPECT_INT(cfg->repository.retries, 0);
    }
    sb_config_free(cfg);
    cfg = NULL;

    EXPECT_OK(parse_q("{" APP "," REL ",'repository':{'url':'sftp://u@h/b','timeout_s':1,"
                      "'retries':20}}",
                      &cfg, &err),
              &err);
    if (cfg) {
        EXPECT_INT(cfg->repository.timeout_s, 1);
        EXPECT_INT(cfg->repository.retries, 20);
        EXPECT(cfg->repository.identity_passphrase_file == NULL);
    }
    sb_config_free(cfg);
    cfg = NULL;

    /* Accepted for a local repository too, as identity_file is, so that switching the url
     * back and forth needs no other edit. */
    EXPECT_OK(parse_q("{" APP "," REL ",'repository':{'url':'/srv/backups','timeout_s':10,"
                      "'retries':2}}",
                      &cfg, &err),
              &err);
    if (cfg) {
        EXPECT(!cfg->repository.is_sftp);
        EXPECT_INT(cfg->repository.timeout_s, 10);
        EXPECT_INT(cfg->repository.retries, 2);
    }
    sb_config_free(cfg);
}

/* verify.sql_probe: parsed in order, expect optional (and may be empty), the verify section
 * may come before databases in the text; an empty list is no probe. */
static void
test_verify_probes(void)
{
    struct sb_error err = SB_ERROR_INIT;
    struct sb_config *cfg = NULL;

    EXPECT_OK(parse_q("{" APP "," REPO ",'verify':{'sql_probe':[{'database':'main','sql':"
                      "'SELECT count(*) FROM orders','expect':'1000'},{'database':'sessions',"
                      "'sql':'SELECT max(id) FROM s'},{'database':'main','sql':'SELECT 1',"
                      "'expect':''}]},'databases':[{" PG "},{'name':'sessions','engine':"
                      "'sqlite','path':'/srv/s.sqlite3'}]}",
                      &cfg, &err),
              &err);
    if (cfg) {
        EXPECT_INT(cfg->verify.sql_probe_count, 3);
        EXPECT_STR(cfg->verify.sql_probes[0].database, "main");
        EXPECT_STR(cfg->verify.sql_probes[0].sql, "SELECT count(*) FROM orders");
        EXPECT_STR(cfg->verify.sql_probes[0].expect, "1000");
        EXPECT_STR(cfg->verify.sql_probes[1].database, "sessions");
        EXPECT(cfg->verify.sql_probes[1].expect == NULL);
        EXPECT_STR(cfg->verify.sql_probes[2].expect, "");
    }
    sb_config_free(cfg);
    cfg = NULL;

    EXPECT_OK(parse_q("{" BASE ",'verify':{'sql_probe':[]}}", &cfg, &err), &err);
    if (cfg)
        EXPECT_INT(cfg->verify.sql_probe_count, 0);
    sb_config_free(cfg);
    cfg = NULL;

    EXPECT_OK(parse_q("{" BASE ",'verify':{}}", &cfg, &err), &err);
    if (cfg)
        EXPECT_INT(cfg->verify.sql_probe_count, 0);
    sb_config_free(cfg);
}

static void
test_bad_schedule(void)
{
    struct sb_error err = SB_ERROR_INIT;
    struct sb_config *cfg = NULL;
    static const char prefix[] = "schedule.snapshot: ";

    /* The cron module words the rest; it must only be wrapped with the path. */
    EXPECT_ERR(parse_q("{" BASE ",'schedule':{'snapshot':'61 * * * *'}}", &cfg, &err), &err,
               SB_E_CONFIG, NULL);
    EXPECT(strncmp(err.msg, prefix, strlen(prefix)) == 0);
    EXPECT(strlen(err.msg) > strlen(prefix));
    EXPECT(cfg == NULL);
}

static void
test_schedule_zone_and_jitter(void)
{
    struct sb_error err = SB_ERROR_INIT;
    struct sb_config *cfg = NULL;

    EXPECT_OK(parse_q("{" BASE ",'schedule':{'snapshot':'@hourly','timezone':'America/New_York',"
                      "'jitter':'5m'}}",
                      &cfg, &err),
              &err);
    if (cfg) {
        EXPECT_STR(cfg->schedule.timezone, "America/New_York");
        EXPECT_INT(cfg->schedule.jitter_s, 300);
    }
    sb_config_free(cfg);
    cfg = NULL;
    EXPECT_OK(parse_q("{" BASE ",'schedule':{'timezone':'UTC','jitter':'1h'}}", &cfg, &err), &err);
    if (cfg) {
        EXPECT_STR(cfg->schedule.timezone, "UTC");
        EXPECT_INT(cfg->schedule.jitter_s, 3600);
    }
    sb_config_free(cfg);
    cfg = NULL;
    EXPECT_OK(parse_q("{" BASE ",'schedule':{'jitter':'0'}}", &cfg, &err), &err);
    if (cfg)
        EXPECT_INT(cfg->schedule.jitter_s, 0);
    sb_config_free(cfg);
    cfg = NULL;
    /* defaults: the local zone, no jitter */
    EXPECT_OK(parse_q("{" BASE ",'schedule':{'snapshot':'@daily'}}", &cfg, &err), &err);
    if (cfg) {
        EXPECT(cfg->schedule.timezone == NULL);
        EXPECT_INT(cfg->schedule.jitter_s, 0);
    }
    sb_config_free(cfg);
}

static void
test_long_key_is_cut(void)
{
    struct sb_error err = SB_ERROR_INIT;
    struct sb_config *cfg = NULL;
    char json[512];
    char want[128];
    char key[101];

    memset(key, 'k', 100);
    key[100] = '\0';
    snprintf(json, sizeof(json), "{" BASE ",'%s':1}", key);
    snprintf(want, sizeof(want), "%.64s...: unknown key", key);
    EXPECT_ERR(parse_q(json, &cfg, &err), &err, SB_E_CONFIG, want);
}

static void
test_raw_nul_and_lengths(void)
{
    struct sb_error err = SB_ERROR_INIT;
    struct sb_config *cfg = NULL;
    static const char with_nul[] = "{\n \"app\": \"shop\0.old\"}";
    char *json = quoted("{" BASE "}");
    size_t len = strlen(json);

    EXPECT_ERR(sb_config_parse(with_nul, sizeof(with_nul) - 1, NULL, &cfg, &err), &err, SB_E_CONFIG,
               "line 2 column 14: NUL characters are not allowed");

    /* The length is honoured: no NUL terminator is needed and bytes after len are ignored. */
    char *copy = malloc(len + 5);
    if (!copy)
        abort();
    memcpy(copy, json, len);
    memcpy(copy + len, "junk", 4);
    copy[len + 4] = '\0';
    EXPECT_OK(sb_config_parse(copy, len, NULL, &cfg, &err), &err);
    if (cfg)
        EXPECT(cfg->source_path == NULL);
    sb_config_free(cfg);
    cfg = NULL;
    EXPECT_ERR(sb_config_parse(copy, len + 4, NULL, &cfg, &err), &err, SB_E_CONFIG, NULL);
    EXPECT(strncmp(err.msg, "invalid JSON near line 1 column ", 32) == 0);
    EXPECT_ERR(sb_config_parse(copy, len - 1, NULL, &cfg, &err), &err, SB_E_CONFIG, NULL);
    EXPECT(strncmp(err.msg, "invalid JSON near line 1 column ", 32) == 0);
    free(copy);
    free(json);
    sb_config_free(NULL);
}

static void
test_duration(void)
{
    static const struct {
        const char *text;
        int64_t seconds;
    } good[] = {
        {"90s", 90},
        {"90m", 5400},
        {"2h", 7200},
        {"1d", 86400},
        {"2w", 1209600},
        {"007m", 420},
        {"1s", 1},
        {"9223372036854775807s", INT64_MAX},
        {"15250284452471w", INT64_C(9223372036854460800)},
    };
    static const char *const bad[] = {
        "",
        "h",
        "0h",
        "-1h",
        "+1h",
        "1.5h",
        "1 h",
        " 1h",
        "1h ",
        "1H",
        "1y",
        "1h30m",
        "90",
        "m90",
        "1hh",
        "9223372036854775808s",
        "9223372036854775807m",
        "15250284452472w",
    };

    for (size_t case_idx = 0; case_idx < sizeof(good) / sizeof(good[0]); case_idx++) {
        int64_t seconds = -1;
        EXPECT_INT(sb_parse_duration(good[case_idx].text, &seconds), 0);
        EXPECT_INT(seconds, good[case_idx].seconds);
    }
    for (size_t case_idx = 0; case_idx < sizeof(bad) / sizeof(bad[0]); case_idx++) {
        int64_t seconds = -1;
        if (sb_parse_duration(bad[case_idx], &seconds) != -1)
            TEST_FAIL("sb_parse_duration('%s') succeeded", bad[case_idx]);
        EXPECT_INT(seconds, -1);
    }
    EXPECT_INT(sb_parse_duration(NULL, NULL), -1);
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) || close(fd) != 0 ||
        chmod(path, mode) != 0) {
        TEST_FAIL("cannot write '%s': %s", path, strerror(errno));
    }
}

static void
test_secret_file(void)
{
    struct sb_error err = SB_ERROR_INIT;
    char dir_template[] = "/tmp/snapback-test-config-XXXXXX";
    char *dir = mkdtemp(dir_template);
    char key[256], missing[256], want[768];
    unsigned long euid = (unsigned long)geteuid();

    if (!dir) {
        TEST_FAIL("mkdtemp: %s", strerror(errno));
        return;
    }
    snprintf(key, sizeof(key), "%s/shop.key", dir);
    snprintf(missing, sizeof(missing), "%s/missing.key", dir);

    write_file(key, "secret\n", 0600);
    EXPECT_OK(sb_check_secret_file(key, "key file", &err), &err);
    EXPECT_OK(chmod(key, 0400), &err);
    EXPECT_OK(sb_check_secret_file(key, "key file", &err), &err);

    EXPECT_OK(chmod(key, 0640), &err);
    snprintf(want, sizeof(want),
             "key file '%s' is accessible by group or others (mode 0640); run: chmod 600 '%s'", key,
             key);
    EXPECT_ERR(sb_check_secret_file(key, "key file", &err), &err, SB_E_PERM, want);

    EXPECT_OK(chmod(key, 0604), &err);
    snprintf(want, sizeof(want),
             "password file '%s' is accessible by group or others (mode 0604); run: chmod 600 "
             "'%s'",
             key, key);
    EXPECT_ERR(sb_check_secret_file(key, "password file", &err), &err, SB_E_PERM, want);

    snprintf(want, sizeof(want), "key file '%s': cannot open: No such file or directory", missing);
    EXPECT_ERR(sb_check_secret_file(missing, "key file", &err), &err, SB_E_NOTFOUND, want);
    EXPECT_INT(err.sys_errno, ENOENT);

    snprintf(want, sizeof(want), "identity file '%s' is not a regular file", dir);
    EXPECT_ERR(sb_check_secret_file(dir, "identity file", &err), &err, SB_E_PERM, want);

    /* Ownership can only be given away by root. */
    if (euid == 0) {
        EXPECT_OK(chmod(key, 0600), &err);
        EXPECT_OK(chown(key, 12345, (gid_t)-1), &err);
        snprintf(want, sizeof(want),
                 "key file '%s' is owned by uid 12345, not by the user running snapback (uid 0); "
                 "chown it",
                 key);
        EXPECT_ERR(sb_check_secret_file(key, "key file", &err), &err, SB_E_PERM, want);
    }

    unlink(key);
    rmdir(dir);
}

static void
test_load(void)
{
    struct sb_error err = SB_ERROR_INIT;
    struct sb_config *cfg = NULL;
    char dir_template[] = "/tmp/snapback-test-config-XXXXXX";
    char *dir = mkdtemp(dir_template);
    char good[256], bad[256], invalid[256], missing[256], want[768];

    if (!dir) {
        TEST_FAIL("mkdtemp: %s", strerror(errno));
        return;
    }
    snprintf(good, sizeof(good), "%s/good.json", dir);
    snprintf(bad, sizeof(bad), "%s/bad.json", dir);
    snprintf(invalid, sizeof(invalid), "%s/invalid.json", dir);
    snprintf(missing, sizeof(missing), "%s/missing.json", dir);

    write_file(good, example_config, 0644);
    EXPECT_OK(sb_config_load(good, &cfg, &err), &err);
    if (cfg) {
        EXPECT_STR(cfg->source_path, good);
        EXPECT_STR(cfg->app, "shop");
        EXPECT_INT(cfg->database_count, 2);
    }
    sb_config_free(cfg);
    cfg = NULL;

    snprintf(want, sizeof(want),
             "config '%s': cannot read: No such file or directory; pass --config FILE or set "
             "SNAPBACK_CONFIG",
             missing);
    EXPECT_ERR(sb_config_load(missing, &cfg, &err), &err, SB_E_CONFIG, want);
    EXPECT_INT(err.sys_errno, ENOENT);
    EXPECT(cfg == NULL);

    snprintf(want, sizeof(want),
             "config '%s': cannot read: Is a directory; pass --config FILE or set "
             "SNAPBACK_CONFIG",
             dir);
    EXPECT_ERR(sb_config_load(dir, &cfg, &err), &err, SB_E_CONFIG, want);

    /* The missing comma after "shop" is reported where the next key starts. */
    write_file(invalid, "{\n  \"app\": \"shop\"\n  \"state_dir\": \"/var/lib/snapback/shop\"\n}\n",
               0644);
    snprintf(want, sizeof(want), "config '%s': invalid JSON near line 3 column 3", invalid);
    EXPECT_ERR(sb_config_load(invalid, &cfg, &err), &err, SB_E_CONFIG, want);

    /* Columns count characters: "é" is two bytes but one column. */
    write_file(invalid, "{\n  \"café\" 1\n}\n", 0644);
    snprintf(want, sizeof(want), "config '%s': invalid JSON near line 2 column 10", invalid);
    EXPECT_ERR(sb_config_load(invalid, &cfg, &err), &err, SB_E_CONFIG, want);

    write_file(bad, "{\"app\": \"shop\", \"frobnicate\": true}", 0644);
    snprintf(want, sizeof(want), "config '%s': frobnicate: unknown key", bad);
    EXPECT_ERR(sb_config_load(bad, &cfg, &err), &err, SB_E_CONFIG, want);

    /* A huge file is refused before it is parsed. */
    char *huge = malloc(1024 * 1024 + 2);
    if (!huge)
        abort();
    memset(huge, ' ', 1024 * 1024 + 1);
    huge[0] = '{';
    huge[1024 * 1024] = '}';
    huge[1024 * 1024 + 1] = '\0';
    write_file(bad, huge, 0644);
    snprintf(want, sizeof(want), "config '%s': larger than 1 MiB; is this the right file?", bad);
    EXPECT_ERR(sb_config_load(bad, &cfg, &err), &err, SB_E_CONFIG, want);
    huge[1024 * 1024] = '\0';
    huge[1024 * 1024 - 1] = '}';
    write_file(bad, huge, 0644);
    snprintf(want, sizeof(want), "config '%s': app: required key is missing", bad);
    EXPECT_ERR(sb_config_load(bad, &cfg, &err), &err, SB_E_CONFIG, want);
    free(huge);

    write_file(bad, "", 0644);
    snprintf(want, sizeof(want), "config '%s': empty file, expected a JSON object", bad);
    EXPECT_ERR(sb_config_load(bad, &cfg, &err), &err, SB_E_CONFIG, want);

    unlink(good);
    unlink(bad);
    unlink(invalid);
    rmdir(dir);
}

int
main(void)
{
    RUN(test_example);
    RUN(test_minimal_defaults);
    RUN(test_database_only);
    RUN(test_repository_urls);
    RUN(test_repository_sftp_options);
    RUN(test_bad_configs);
    RUN(test_bad_schedule);
    RUN(test_verify_probes);
    RUN(test_schedule_zone_and_jitter);
    RUN(test_long_key_is_cut);
    RUN(test_raw_nul_and_lengths);
    RUN(test_duration);
    RUN(test_secret_file);
    RUN(test_load);
    return test_summary();
}
