/* daemon: the built-in scheduler (DESIGN §9). It fires the config's schedule (snapshot,
 * prune, verify cron expressions, local time zone, DST as cronie) by running this same binary
 * as a child for each job, so a job takes the app lock like a cron run, and a job that
 * crashes cannot take the scheduler down. A job never overlaps itself (a fire time that comes
 * while it still runs is skipped and logged); a run missed while the daemon was down is
 * caught up once at start; SIGHUP reloads the config (keeping the old one if the new one is
 * invalid); SIGTERM/SIGINT stop it, passing the signal to a running job, which then cleans up
 * and leaves at most orphans. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    "local time) until stopped. Each job is `snapback --config FILE JOB` run as a child, under\n"
    "the same lock as cron runs. SIGHUP reloads the config; SIGTERM finishes cleanly.",
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

struct schedule {
    struct sb_cron *cron[JOB_COUNT];
    time_t next[JOB_COUNT];
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
    for (int idx = 0; idx < JOB_COUNT; idx++) {
        if (!exprs[idx])
            continue;
        if (sb_cron_parse(exprs[idx], &s->cron[idx], err) < 0 ||
            sb_cron_next(s->cron[idx], now, NULL, &s->next[idx], err) < 0) {
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

/* Runs `snapback --config FILE JOB` and waits; a SIGTERM to us is passed on. */
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
        const char *argv[] = {self,
                              "--config",
                              cli->config_path,
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
    return sb_cron_next(cron, last.time, NULL, &due, &err) == 0 && due < now;
}

int
cmd_daemon(struct sb_cli *cli, struct sb_error *err)
{
    if (cli->argc > 1)
        return sb_error_set(err, SB_E_USAGE, 0, "daemon: unexpected argument '%s'", cli->argv[1]);
    struct schedule sched;
    memset(&sched, 0, sizeof(sched));
    time_t now = time(NULL);
    if (schedule_load(cli->cfg, &sched, now, err) < 0)
        return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    sb_log(SB_LOG_INFO, "daemon_start", "daemon started for app '%s' (pid %ld)", cli->cfg->app,
           (long)getpid());
    for (int idx = 0; idx < JOB_COUNT; idx++)
        if (sched.cron[idx] && missed(cli->cfg, sched.cron[idx], job_names[idx], now)) {
            sb_log(SB_LOG_INFO, "catch_up",
                   "%s missed a run while the daemon was down: "
                   "running it once now",
                   job_names[idx]);
            run_job(cli, job_names[idx]);
        }
    while (!got_term) {
        if (got_hup) {
            got_hup = 0;
            struct sb_config *fresh = NULL;
            struct schedule next_sched;
            memset(&next_sched, 0, sizeof(next_sched));
            struct sb_error rerr = SB_ERROR_INIT;
            if (sb_config_load(cli->config_path, &fresh, &rerr) < 0 ||
                schedule_load(fresh, &next_sched, time(NULL), &rerr) < 0) {
                sb_log(SB_LOG_ERROR, "reload", "keeping the old config: %s", rerr.msg);
                sb_config_free(fresh);
            } else {
                schedule_free(&sched);
                sched = next_sched;
                sb_config_free(cli->cfg);
                cli->cfg = fresh;
                sb_log_set_context(cli->cfg->app, NULL);
                sb_log(SB_LOG_INFO, "reload", "config reloaded");
            }
        }
        now = time(NULL);
        int due = -1;
        for (int idx = 0; idx < JOB_COUNT; idx++)
            if (sched.cron[idx] && (due < 0 || sched.next[idx] < sched.next[due]))
                due = idx;
        if (sched.next[due] > now) {
            /* sleep in steps, so the clock jumping (suspend, NTP) is noticed */
            time_t wait = sched.next[due] - now;
            struct timespec ts = {wait > 30 ? 30 : wait, 0};
            nanosleep(&ts, NULL); /* a signal ends it early */
            continue;
        }
        run_job(cli, job_names[due]);
        /* its next fire strictly after now: fires that passed while it ran are skipped, so it
         * never runs twice in a row to catch up; other jobs that became due run next */
        if (sb_cron_next(sched.cron[due], time(NULL), NULL, &sched.next[due], err) < 0) {
            schedule_free(&sched);
            return -1;
        }
    }
    sb_log(SB_LOG_INFO, "daemon_stop", "daemon stopped by signal %d", (int)got_term);
    schedule_free(&sched);
    return 0;
}
