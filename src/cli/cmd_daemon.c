/* daemon: the built-in scheduler (DESIGN §9). It fires the config's schedule (snapshot,
 * prune, verify cron expressions, in the local zone or schedule.timezone, DST as cronie) by running
 * this same binary as a child for each job, so a job takes the app lock like a cron run, and a job
 * that crashes cannot take the scheduler down. A job never overlaps itself (a fire time that comes
 * while it still runs is skipped and logged); a run missed while the daemon was down is
 * caught up once at start; SIGHUP reloads the config (keeping the old one if the new one is
 * invalid); SIGTERM/SIGINT stop it, passing the signal to a running job, which then cleans up
 * and leaves at most orphans.
 *
 * schedule.timezone: fire times are computed in that zone by sb_cron_next(), which reads the
 * zone's TZif file itself (src/ops/zone.c) rather than pointing TZ at it: switching TZ
 * (setenv + tzset) is process-global and not thread-safe, and would leak into the jobs' and
 * the log's notion of local time if anything went wrong between the switch and its undo.
 * schedule.jitter delays each fire by a random 0..jitter seconds (systemd's
 * RandomizedDelaySec), so many hosts on one repository do not start together.
 *
 * Test hook, never for production: with SNAPBACK_TEST_HOOKS=1 and SNAPBACK_TEST_CLOCK=FILE,
 * "now" is the epoch second written in FILE (re-read on every loop turn), sleeps are 20 ms,
 * and when nothing is due the daemon writes the time it has caught up to into FILE.idle, so
 * a test can step the clock and wait for the daemon to settle
 * (tests/integration/daemon_clock.sh). SNAPBACK_TEST_CLOCK without SNAPBACK_TEST_HOOKS=1 is
 * ignored with a warning. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "snapback/core.h"
#include "snapback/cron.h"
#include "snapback/ops.h"

const struct sb_cmd_help help_daemon = {
    "snapback daemon",
    "Runs the config's schedule (\"schedule\": {\"snapshot\": \"0 * * * *\", \"prune\": ...,\n"
    "\"verify\": ...}; 5-field cron expressions or @hourly/@daily/@weekly/@monthly/@yearly,\n"
    "in schedule.timezone or local time, each fire delayed by a random 0..schedule.jitter)\n"
    "until stopped. Each job is `snapback JOB` run as a child under the same lock as cron\n"
    "runs, with the config the daemon accepted (copied to state_dir/daemon-config.json).\n"
    "SIGHUP reloads the config (a broken one is refused and the old one kept, for the jobs\n"
    "too); SIGTERM passes the signal to a running job and stops cleanly.",
    NULL,
};

#define JOB_COUNT 3
static const char *const job_names[JOB_COUNT] = {"snapshot", "prune", "verify"};

static volatile sig_atomic_t got_term, got_hup;

static void
on_term(int signo)
{
    got_term = signo;
    sb_request_stop(signo);
}

static void
on_hup(int signo)
{
    (void)signo;
    got_hup = 1;
}

/* The daemon's notion of time: the real clock, or the test clock described at the top. */
struct daemon_clock {
    const char *fake_path; /* NULL: the real clock */
    time_t fake_now;
    time_t idle_written;
};

static void
clock_init(struct daemon_clock *clk)
{
    const char *path = getenv("SNAPBACK_TEST_CLOCK");
    const char *hooks = getenv("SNAPBACK_TEST_HOOKS");
    bool hooks_on = hooks && !strcmp(hooks, "1");
    memset(clk, 0, sizeof(*clk));
    clk->idle_written = (time_t)-1;
    if (path && *path && hooks_on)
        clk->fake_path = path;
    else if (path && *path)
        sb_warn("SNAPBACK_TEST_CLOCK is set but SNAPBACK_TEST_HOOKS is not 1: ignored, the "
                "daemon uses the real clock (the test clock is for snapback's own tests; unset "
                "SNAPBACK_TEST_CLOCK)");
    if (clk->fake_path)
        sb_warn("test clock: 'now' is read from '%s' (SNAPBACK_TEST_HOOKS=1); never use this in "
                "production",
                clk->fake_path);
}

static time_t
clock_now(struct daemon_clock *clk)
{
    if (!clk->fake_path)
        return time(NULL);
    FILE *f = fopen(clk->fake_path, "r");
    long long value = 0;
    if (f && fscanf(f, "%lld", &value) == 1 && value > 0)
        clk->fake_now = (time_t)value;
    else if (!clk->fake_now)
        sb_warn("test clock '%s' cannot be read as an epoch second; using 0 until it can",
                clk->fake_path);
    if (f)
        fclose(f);
    return clk->fake_now;
}

/* Sleeps until about `wait` seconds passed (the real clock) or a moment (the test clock); a
 * signal ends it early. Steps of at most 30 s, so the clock jumping (suspend, NTP) is
 * noticed. */
static void
clock_sleep(struct daemon_clock *clk, time_t wait)
{
    struct timespec ts = {wait > 30 ? 30 : wait, 0};
    if (clk->fake_path) {
        ts.tv_sec = 0;
        ts.tv_nsec = 20 * 1000 * 1000;
    }
    nanosleep(&ts, NULL);
}

/* Test clock only: tells the test that everything due up to `now` has run. */
static void
clock_idle(struct daemon_clock *clk, time_t now)
{
    if (!clk->fake_path || clk->idle_written == now)
        return;
    char path[4096], text[32];
    struct sb_error err = SB_ERROR_INIT;
    snprintf(path, sizeof(path), "%s.idle", clk->fake_path);
    int len = snprintf(text, sizeof(text), "%lld\n", (long long)now);
    if (sb_write_file_atomic(path, text, (size_t)len, 0644, &err) < 0)
        sb_warn("test clock: %s", err.msg);
    else
        clk->idle_written = now;
}

/* A uniformly random delay in 0..max_s seconds. */
static time_t
jitter_delay(int64_t max_s)
{
    uint64_t r = 0;
    if (max_s <= 0)
        return 0;
    if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
        r = (uint64_t)rand();
    return (time_t)(r % (uint64_t)(max_s + 1));
}

struct schedule {
    struct sb_cron *cron[JOB_COUNT];
    time_t next[JOB_COUNT];  /* the cron fire time */
    time_t delay[JOB_COUNT]; /* its jitter: the job runs at next + delay */
    const char *tz;          /* borrowed from the config the schedule was loaded from */
    int64_t jitter_s;
};

static void
schedule_free(struct schedule *s)
{
    for (int idx = 0; idx < JOB_COUNT; idx++) {
        sb_cron_free(s->cron[idx]);
        s->cron[idx] = NULL;
    }
}

static int
schedule_load(const struct sb_config *cfg, struct schedule *s, time_t now, struct sb_error *err)
{
    const char *exprs[JOB_COUNT] = {cfg->schedule.snapshot, cfg->schedule.prune,
                                    cfg->schedule.verify};
    int active = 0;
    s->tz = cfg->schedule.timezone;
    s->jitter_s = cfg->schedule.jitter_s;
    for (int idx = 0; idx < JOB_COUNT; idx++) {
        if (!exprs[idx])
            continue;
        s->delay[idx] = jitter_delay(s->jitter_s);
        if (sb_cron_parse(exprs[idx], &s->cron[idx], err) < 0 ||
            sb_cron_next(s->cron[idx], now, s->tz, &s->next[idx], err) < 0) {
            schedule_free(s);
            return sb_error_wrap(err, "schedule.%s", job_names[idx]);
        }
        active++;
    }
    if (!active) {
        schedule_free(s);
        return sb_error_set(err, SB_E_CONFIG, 0,
                            "schedule: no job is scheduled; set schedule.snapshot (and prune, "
                            "verify) to cron expressions");
    }
    return 0;
}

/* The jobs are children that read their config from a file. Were that the operator's file,
 * an edit that the daemon refuses on SIGHUP (keeping the old config) would still be read by
 * every job after it. So the daemon pins the config it accepted: the file is read once, those
 * bytes are parsed and validated, and only then written to state_dir/daemon-config.json (0600,
 * atomically), which is the --config of every job. All paths in a config are absolute, so the
 * copy means the same as the original. *out and *pinned (malloc'd) are the caller's. */
#define PINNED_CONFIG "daemon-config.json"
#define CONFIG_READ_MAX (1024 * 1024 + 1)

/* A daemon config: the parsed struct and the exact text it came from. */
struct daemon_config {
    struct sb_config *cfg;
    char *text;
    size_t len;
};

static void
daemon_config_release(struct daemon_config *dc)
{
    sb_config_free(dc->cfg);
    free(dc->text);
    memset(dc, 0, sizeof(*dc));
}

static int
daemon_config_read(const char *path, struct daemon_config *dc, struct sb_error *err)
{
    memset(dc, 0, sizeof(*dc));
    if (sb_read_file(path, CONFIG_READ_MAX, &dc->text, &dc->len, err) < 0 ||
        sb_config_parse(dc->text, dc->len, path, &dc->cfg, err) < 0) {
        daemon_config_release(dc);
        return -1;
    }
    return 0;
}

/* Writes the text to state_dir/daemon-config.json; *pinned (malloc'd) is its path. */
static int
daemon_config_pin(const struct daemon_config *dc, char **pinned, struct sb_error *err)
{
    char *copy = sb_path_join(dc->cfg->state_dir, PINNED_CONFIG);
    *pinned = NULL;
    if (!copy)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    if (sb_mkdir_p(dc->cfg->state_dir, 0700, err) < 0 ||
        sb_write_file_atomic(copy, dc->text, dc->len, 0600, err) < 0) {
        free(copy);
        return sb_error_wrap(err, "cannot keep a copy of the config for the daemon's jobs");
    }
    *pinned = copy;
    return 0;
}

/* Says when each job runs next, so an operator can check the schedule and zone. */
static void
log_schedule(const struct schedule *s)
{
    for (int idx = 0; idx < JOB_COUNT; idx++) {
        if (!s->cron[idx])
            continue;
        char when[32];
        sb_format_time_iso(s->next[idx] + s->delay[idx], when);
        sb_log(SB_LOG_INFO, "schedule", "next %s at %s (%s%s, jitter %lld s)", job_names[idx], when,
               s->tz ? "time zone " : "", s->tz ? s->tz : "local time", (long long)s->delay[idx]);
    }
}

/* Runs `snapback --config PINNED JOB` and waits; a SIGTERM to us is passed on. */
static const char *job_config_path;

static int
run_job(struct sb_cli *cli, const char *job)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n < 0)
        return -1;
    self[n] = '\0';
    double started = sb_now_monotonic();
    sb_log(SB_LOG_INFO, "job_start", "starting %s", job);
    pid_t pid = fork();
    if (pid < 0) {
        sb_log(SB_LOG_ERROR, "job", "cannot start %s: %s", job, strerror(errno));
        return -1;
    }
    if (pid == 0) {
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        sb_restore_nofile();
        const char *argv[] = {self,
                              "--config",
                              job_config_path,
                              "--no-progress",
                              cli->json_logs ? "--log-format=json" : "--log-format=text",
                              job,
                              NULL};
        execv(self, (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    bool forwarded = false;
    for (;;) {
        pid_t r = waitpid(pid, &status, 0);
        if (r == pid)
            break;
        if (r < 0 && errno == EINTR) {
            if (got_term && !forwarded) {
                sb_log(SB_LOG_INFO, "job_signal", "passing signal %d to the running %s (pid %ld)",
                       (int)got_term, job, (long)pid);
                kill(pid, (int)got_term);
                forwarded = true;
            }
            continue;
        }
        break;
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    sb_log(code == 0 ? SB_LOG_INFO : SB_LOG_ERROR, "job_end", "%s finished with exit %d in %.1f s",
           job, code, sb_now_monotonic() - started);
    return code;
}

/* A run missed while the daemon was not running: the last journalled run is older than the
 * fire time that followed it. Caught up once, not once per missed fire. */
static bool
missed(const struct sb_config *cfg, const struct sb_cron *cron, const char *job, time_t now)
{
    struct sb_journal_entry last, ok;
    struct sb_error err = SB_ERROR_INIT;
    if (sb_journal_last(cfg->state_dir, job, &last, &ok, &err) < 0 || !last.present)
        return false;
    time_t due;
    return sb_cron_next(cron, last.time, cfg->schedule.timezone, &due, &err) == 0 && due < now;
}

int
cmd_daemon(struct sb_cli *cli, struct sb_error *err)
{
    if (cli->argc > 1)
        return sb_error_set(err, SB_E_USAGE, 0, "daemon: unexpected argument '%s'", cli->argv[1]);
    struct daemon_clock clk;
    clock_init(&clk);
    struct schedule sched;
    memset(&sched, 0, sizeof(sched));
    time_t now = clock_now(&clk);
    struct daemon_config dc;
    char *pinned_path = NULL;
    /* the config main loaded, read once more: what is checked and what is pinned are one text */
    if (daemon_config_read(cli->config_path, &dc, err) < 0)
        return -1;
    if (schedule_load(dc.cfg, &sched, now, err) < 0 ||
        daemon_config_pin(&dc, &pinned_path, err) < 0) {
        schedule_free(&sched);
        daemon_config_release(&dc);
        return -1;
    }
    sb_config_free(cli->cfg);
    cli->cfg = dc.cfg;
    dc.cfg = NULL;
    daemon_config_release(&dc);
    job_config_path = pinned_path;
    log_schedule(&sched);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    sb_log(SB_LOG_INFO, "daemon_start", "daemon started for app '%s' (pid %ld, time zone %s)",
           cli->cfg->app, (long)getpid(),
           cli->cfg->schedule.timezone ? cli->cfg->schedule.timezone : "local");
    /* A job that missed a run while the daemon was down is due at once, plus its jitter like
     * any fire (after a reboot of many hosts, their catch-ups spread out too); the loop runs it
     * once. */
    for (int idx = 0; idx < JOB_COUNT && !got_term; idx++)
        if (sched.cron[idx] && missed(cli->cfg, sched.cron[idx], job_names[idx], now)) {
            sb_log(SB_LOG_INFO, "catch_up",
                   "%s missed a run while the daemon was down: running it once now%s",
                   job_names[idx], sched.delay[idx] ? " (after its jitter)" : "");
            sched.next[idx] = now;
        }
    while (!got_term) {
        if (got_hup) {
            got_hup = 0;
            struct daemon_config fresh;
            char *fresh_path = NULL;
            struct schedule next_sched;
            memset(&next_sched, 0, sizeof(next_sched));
            struct sb_error rerr = SB_ERROR_INIT;
            /* all checked before the pinned copy is replaced */
            if (daemon_config_read(cli->config_path, &fresh, &rerr) < 0 ||
                schedule_load(fresh.cfg, &next_sched, clock_now(&clk), &rerr) < 0 ||
                daemon_config_pin(&fresh, &fresh_path, &rerr) < 0) {
                sb_log(SB_LOG_ERROR, "reload",
                       "keeping the old config: %s (fix '%s' and send SIGHUP again)", rerr.msg,
                       cli->config_path);
                schedule_free(&next_sched);
            } else {
                schedule_free(&sched);
                sched = next_sched;
                sb_config_free(cli->cfg);
                cli->cfg = fresh.cfg;
                fresh.cfg = NULL;
                free(pinned_path);
                pinned_path = fresh_path;
                job_config_path = pinned_path;
                sb_log_set_context(cli->cfg->app, NULL);
                sb_log(SB_LOG_INFO, "reload", "config reloaded");
                log_schedule(&sched);
            }
            daemon_config_release(&fresh);
        }
        now = clock_now(&clk);
        int due = -1;
        for (int idx = 0; idx < JOB_COUNT; idx++)
            if (sched.cron[idx] && (due < 0 || sched.next[idx] + sched.delay[idx] <
                                                   sched.next[due] + sched.delay[due]))
                due = idx;
        time_t fire = sched.next[due] + sched.delay[due];
        if (fire > now) {
            clock_idle(&clk, now);
            clock_sleep(&clk, fire - now);
            continue;
        }
        run_job(cli, job_names[due]);
        /* its next fire strictly after now: fires that passed while it ran are skipped, so it
         * never runs twice in a row to catch up; other jobs that became due run next. The
         * search starts from now less this fire's jitter, so that a delayed run does not skip
         * the next fire when the jitter is larger than the interval's remainder. */
        now = clock_now(&clk);
        time_t from =
            now - sched.delay[due] > sched.next[due] ? now - sched.delay[due] : sched.next[due];
        sched.delay[due] = jitter_delay(sched.jitter_s);
        if (sb_cron_next(sched.cron[due], from, sched.tz, &sched.next[due], err) < 0) {
            sb_error_wrap(err, "schedule.%s", job_names[due]);
            schedule_free(&sched);
            free(pinned_path);
            return -1;
        }
    }
    sb_log(SB_LOG_INFO, "daemon_stop", "daemon stopped by signal %d", (int)got_term);
    schedule_free(&sched);
    free(pinned_path);
    return 0;
}
