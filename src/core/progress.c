/* The progress line (issue #6): bytes, rate and, when the total is known, percentage and ETA
 * of the object being written or read, redrawn at most 10 times a second on stderr. Only
 * when enabled by the CLI (stderr is a TTY, no --no-progress, --quiet or JSON logs); the
 * logger clears the line before it prints, so messages never mix with it. A single object is
 * in flight at a time, so the state is one global; a mutex guards it because the restore
 * pipeline reads ahead (and so counts) in a worker thread. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "snapback/core.h"

static struct {
    pthread_mutex_t lock;
    bool enabled, active, drawn;
    char label[72];
    uint64_t done, total, expect_next;
    double started, last_draw;
} P = {PTHREAD_MUTEX_INITIALIZER, false, false, false, "", 0, 0, 0, 0.0, 0.0};

void
sb_progress_enable(bool on)
{
    pthread_mutex_lock(&P.lock);
    P.enabled = on;
    pthread_mutex_unlock(&P.lock);
}

bool
sb_progress_enabled(void)
{
    pthread_mutex_lock(&P.lock);
    bool on = P.enabled;
    pthread_mutex_unlock(&P.lock);
    return on;
}

void
sb_progress_expect(uint64_t total)
{
    pthread_mutex_lock(&P.lock);
    P.expect_next = total;
    pthread_mutex_unlock(&P.lock);
}

/* Shortens a path to its last characters, so the numbers keep their place. */
static void
set_label(const char *what)
{
    size_t len = strlen(what), cap = sizeof(P.label) - 1;
    if (len <= cap)
        snprintf(P.label, sizeof(P.label), "%s", what);
    else
        snprintf(P.label, sizeof(P.label), "...%s", what + len - (cap - 3));
}

static void
clear_locked(void)
{
    if (P.drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        P.drawn = false;
    }
}

static void
draw_locked(double now)
{
    char done[32], total[32], rate[32];
    double elapsed = now - P.started;
    double bps = elapsed > 0.2 ? (double)P.done / elapsed : 0.0;
    sb_format_size(P.done, done);
    sb_format_size((uint64_t)bps, rate);
    if (P.total && P.done <= P.total) {
        sb_format_size(P.total, total);
        unsigned pct = (unsigned)(P.done * 100 / P.total);
        long eta = bps > 0 ? (long)((double)(P.total - P.done) / bps + 0.5) : -1;
        char eta_s[24] = "--:--";
        if (eta >= 0)
            snprintf(eta_s, sizeof(eta_s), "%ld:%02ld", eta / 60, eta % 60);
        fprintf(stderr, "\r\033[K%s  %s / %s  %3u%%  %s/s  ETA %s", P.label, done, total, pct, rate,
                eta_s);
    } else {
        fprintf(stderr, "\r\033[K%s  %s  %s/s", P.label, done, rate);
    }
    fflush(stderr);
    P.drawn = true;
    P.last_draw = now;
}

void
sb_progress_begin(const char *what, uint64_t total)
{
    pthread_mutex_lock(&P.lock);
    if (P.enabled) {
        clear_locked();
        set_label(what);
        P.active = true;
        P.done = 0;
        P.total = total ? total : P.expect_next;
        P.expect_next = 0;
        P.started = sb_now_monotonic();
        P.last_draw = 0.0;
    }
    pthread_mutex_unlock(&P.lock);
}

void
sb_progress_add(uint64_t bytes)
{
    pthread_mutex_lock(&P.lock);
    if (P.active) {
        P.done += bytes;
        double now = sb_now_monotonic();
        /* small objects (manifests) never flash a line: drawn from 0.3 s or 8 MiB on */
        bool worth = P.drawn || now - P.started >= 0.3 || P.done >= (8u << 20);
        if (worth && now - P.last_draw >= 0.1)
            draw_locked(now);
    }
    pthread_mutex_unlock(&P.lock);
}

void
sb_progress_end(void)
{
    pthread_mutex_lock(&P.lock);
    if (P.active) {
        clear_locked();
        P.active = false;
    }
    pthread_mutex_unlock(&P.lock);
}

void
sb_progress_clear(void)
{
    pthread_mutex_lock(&P.lock);
    clear_locked();
    P.last_draw = 0.0; /* redraw at the next count, below the message */
    pthread_mutex_unlock(&P.lock);
}
