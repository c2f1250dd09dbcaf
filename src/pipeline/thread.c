/* Thread stages: a bounded queue of blocks between two parts of a chain, so that on a
 * multi-core machine reading files and compressing (snapshot) or decompressing and writing
 * files (restore) overlap with encrypting, hashing and storing. NOTES.md measured the single
 * thread chain at the speed of three processes in a shell pipe; this is how it gets ahead.
 * Memory is bounded: at most `depth` blocks of `block` bytes are in flight. */
#include "snapback/pipeline.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct block {
    unsigned char *data;
    size_t len;
};

struct queue {
    pthread_mutex_t mu;
    pthread_cond_t changed;
    struct block *slots; /* ring of depth blocks */
    size_t depth, head, count;
    bool closed;  /* producer finished */
    bool aborted; /* consumer or owner gave up */
    /* input side: which party sleeps on `changed` (at most one at a time), so that the other
     * wakes it only when it can do a batch of work (half the queue), not for every block */
    bool producer_waits, consumer_waits;
};

/* Blocks are allocated when first filled, so a small object costs one block, not depth. */
static int
queue_init(struct queue *q, size_t depth)
{
    memset(q, 0, sizeof(*q));
    q->slots = calloc(depth, sizeof(*q->slots));
    if (!q->slots)
        return -1;
    q->depth = depth;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->changed, NULL);
    return 0;
}

static void
queue_release(struct queue *q)
{
    if (!q->slots)
        return;
    for (size_t idx = 0; idx < q->depth; idx++)
        free(q->slots[idx].data);
    free(q->slots);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->changed);
}

/* --- output: the caller's thread fills blocks, a worker writes them downstream --- */

struct thread_ostream {
    struct sb_ostream base;
    struct sb_ostream *down;
    struct queue q;
    size_t block_size;
    struct block *filling; /* a free slot the producer owns, or NULL */
    pthread_t worker;
    bool started;
    bool failed; /* worker error, in werr */
    struct sb_error werr;
};

/* The worker hands a block on only when the one after it is queued too or the producer has
 * closed: it then knows whether more data follows, so a stage below that treats the end of
 * the stream specially (the final chunk of the encryption) takes whole blocks in place
 * (sb_ostream_write_more) instead of keeping a copy of each. */
static void *
ostream_worker(void *arg)
{
    struct thread_ostream *ts = arg;
    struct queue *q = &ts->q;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->aborted && !q->closed && q->count < 2)
            pthread_cond_wait(&q->changed, &q->mu);
        if (q->aborted || (q->count == 0 && q->closed))
            break;
        struct block *b = &q->slots[q->head];
        bool more = q->count >= 2;
        pthread_mutex_unlock(&q->mu);
        int rc = more ? sb_ostream_write_more(ts->down, b->data, b->len, &ts->werr)
                      : sb_ostream_write(ts->down, b->data, b->len, &ts->werr);
        pthread_mutex_lock(&q->mu);
        if (rc < 0) {
            ts->failed = true;
            q->aborted = true;
            pthread_cond_broadcast(&q->changed);
            break;
        }
        q->head = (q->head + 1) % q->depth;
        q->count--;
        pthread_cond_broadcast(&q->changed);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

/* Hands the filled block to the worker and waits for a free one. */
static int
ostream_push(struct thread_ostream *ts, struct sb_error *err)
{
    struct queue *q = &ts->q;
    pthread_mutex_lock(&q->mu);
    if (ts->filling && ts->filling->len > 0) {
        q->count++; /* the filling slot is the one right after the queued ones */
        pthread_cond_broadcast(&q->changed);
    }
    ts->filling = NULL;
    while (q->count == q->depth && !q->aborted)
        pthread_cond_wait(&q->changed, &q->mu);
    bool failed = q->aborted;
    if (!failed) {
        ts->filling = &q->slots[(q->head + q->count) % q->depth];
        ts->filling->len = 0;
    }
    pthread_mutex_unlock(&q->mu);
    if (failed) {
        if (err)
            *err = ts->werr;
        return -1;
    }
    if (!ts->filling->data && !(ts->filling->data = malloc(ts->block_size))) {
        ts->filling = NULL;
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "cannot allocate a pipeline buffer");
    }
    return 0;
}

static int
thread_owrite(struct sb_ostream *s, const void *data, size_t len, struct sb_error *err)
{
    struct thread_ostream *ts = (struct thread_ostream *)s;
    const unsigned char *p = data;
    while (len > 0) {
        if (!ts->filling || ts->filling->len == ts->block_size) {
            if (ostream_push(ts, err) < 0)
                return -1;
        }
        size_t n = ts->block_size - ts->filling->len;
        if (n > len)
            n = len;
        memcpy(ts->filling->data + ts->filling->len, p, n);
        ts->filling->len += n;
        p += n;
        len -= n;
    }
    return 0;
}

/* Lends the rest of the filling block (a fresh one when fewer than min bytes are left), so the
 * stage above produces straight into the queue. */
static int
thread_oreserve(struct sb_ostream *s, size_t min, unsigned char **buf, size_t *cap,
                struct sb_error *err)
{
    struct thread_ostream *ts = (struct thread_ostream *)s;
    if (min > ts->block_size)
        return 0;
    if ((!ts->filling || ts->block_size - ts->filling->len < min) && ostream_push(ts, err) < 0)
        return -1;
    *buf = ts->filling->data + ts->filling->len;
    *cap = ts->block_size - ts->filling->len;
    return 1;
}

static int
thread_ocommit(struct sb_ostream *s, size_t len, struct sb_error *err)
{
    (void)err;
    struct thread_ostream *ts = (struct thread_ostream *)s;
    ts->filling->len += len;
    return 0;
}

static void
ostream_stop(struct thread_ostream *ts, bool abort_queue)
{
    if (!ts->started)
        return;
    pthread_mutex_lock(&ts->q.mu);
    if (abort_queue)
        ts->q.aborted = true;
    ts->q.closed = true;
    pthread_cond_broadcast(&ts->q.changed);
    pthread_mutex_unlock(&ts->q.mu);
    pthread_join(ts->worker, NULL);
    ts->started = false;
}

static int
thread_oclose(struct sb_ostream *s, struct sb_error *err)
{
    struct thread_ostream *ts = (struct thread_ostream *)s;
    if (ts->filling && ts->filling->len > 0) {
        pthread_mutex_lock(&ts->q.mu);
        ts->q.count++;
        ts->filling = NULL;
        pthread_cond_broadcast(&ts->q.changed);
        pthread_mutex_unlock(&ts->q.mu);
    }
    ostream_stop(ts, false);
    if (ts->failed) {
        if (err)
            *err = ts->werr;
        return -1;
    }
    return sb_ostream_close(ts->down, err);
}

static void
thread_ofree(struct sb_ostream *s)
{
    struct thread_ostream *ts = (struct thread_ostream *)s;
    ostream_stop(ts, true);
    sb_ostream_free(ts->down);
    queue_release(&ts->q);
    free(ts);
}

static const struct sb_ostream_ops thread_ostream_ops = {.write = thread_owrite,
                                                         .close = thread_oclose,
                                                         .free = thread_ofree,
                                                         .reserve = thread_oreserve,
                                                         .commit = thread_ocommit};

struct sb_ostream *
sb_thread_ostream_new(struct sb_ostream *down, size_t block_size, size_t depth,
                      struct sb_error *err)
{
    struct thread_ostream *ts = calloc(1, sizeof(*ts));
    if (!ts) {
        sb_ostream_free(down);
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        return NULL;
    }
    ts->base.ops = &thread_ostream_ops;
    ts->down = down;
    ts->block_size = block_size;
    /* the worker looks one block ahead, so the queue needs room for two */
    if (queue_init(&ts->q, depth < 2 ? 2 : depth) < 0) {
        thread_ofree(&ts->base);
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "cannot allocate pipeline buffers");
        return NULL;
    }
    /* set before the worker runs: it shares a word with flags the worker reads */
    ts->started = true;
    if (pthread_create(&ts->worker, NULL, ostream_worker, ts) != 0) {
        ts->started = false;
        thread_ofree(&ts->base);
        sb_error_set(err, SB_E_INTERNAL, errno, "cannot start a pipeline thread");
        return NULL;
    }
    return &ts->base;
}

/* --- input: a worker reads blocks from upstream ahead of the caller --- */

struct thread_istream {
    struct sb_istream base;
    struct sb_istream *up;
    struct queue q;
    size_t block_size;
    size_t pos; /* read position in the head block, owned by the consumer */
    bool lent;  /* the head block is lent to the consumer (borrow) until its next call */
    pthread_t worker;
    bool started;
    bool failed, eof; /* set by the worker under the lock */
    struct sb_error werr;
};

/* Half the queue: a sleeping party is woken when it can do that much work at once. On two
 * cores the three threads of a restore otherwise woke each other for every block (6,000
 * context switches in a 1.2 s restore of /usr/share, docs/PERFORMANCE.md). */
static size_t
batch(const struct queue *q)
{
    return q->depth > 1 ? q->depth / 2 : 1;
}

static void *
istream_worker(void *arg)
{
    struct thread_istream *ts = arg;
    struct queue *q = &ts->q;
    for (;;) {
        pthread_mutex_lock(&q->mu);
        while (q->count == q->depth && !q->aborted) {
            q->producer_waits = true;
            pthread_cond_wait(&q->changed, &q->mu);
        }
        q->producer_waits = false;
        if (q->aborted) {
            pthread_mutex_unlock(&q->mu);
            return NULL;
        }
        struct block *b = &q->slots[(q->head + q->count) % q->depth];
        pthread_mutex_unlock(&q->mu);
        size_t n = 0;
        int rc = -1;
        if (!b->data && !(b->data = malloc(ts->block_size)))
            sb_error_set(&ts->werr, SB_E_INTERNAL, ENOMEM, "cannot allocate a pipeline buffer");
        else
            rc = sb_istream_read_full(ts->up, b->data, ts->block_size, &n, &ts->werr);
        pthread_mutex_lock(&q->mu);
        if (rc < 0)
            ts->failed = true;
        else if (n == 0)
            ts->eof = true;
        else {
            b->len = n;
            q->count++;
        }
        bool stop = ts->failed || ts->eof;
        bool wake = q->consumer_waits && (stop || q->count >= batch(q));
        pthread_mutex_unlock(&q->mu);
        /* after the unlock, so the woken consumer does not block on the mutex at once; it
         * set consumer_waits under the lock and is inside the wait, so it gets the signal */
        if (wake)
            pthread_cond_broadcast(&q->changed);
        if (stop)
            return NULL;
    }
}

/* Gives the head block back to the worker (its data all read). */
static void
istream_pop(struct thread_istream *ts)
{
    struct queue *q = &ts->q;
    ts->pos = 0;
    ts->lent = false;
    pthread_mutex_lock(&q->mu);
    q->head = (q->head + 1) % q->depth;
    q->count--;
    bool wake = q->producer_waits && q->depth - q->count >= batch(q);
    pthread_mutex_unlock(&q->mu);
    if (wake)
        pthread_cond_broadcast(&q->changed);
}

/* Waits for a block: the head block, or NULL at the end of the stream (*rc 0) or after the
 * worker failed (*rc -1, err set). */
static struct block *
istream_head(struct thread_istream *ts, int *rc, struct sb_error *err)
{
    struct queue *q = &ts->q;
    if (ts->lent)
        istream_pop(ts);
    pthread_mutex_lock(&q->mu);
    while (q->count == 0 && !ts->failed && !ts->eof) {
        q->consumer_waits = true;
        pthread_cond_wait(&q->changed, &q->mu);
    }
    q->consumer_waits = false;
    if (q->count == 0) {
        bool failed = ts->failed;
        pthread_mutex_unlock(&q->mu);
        *rc = 0;
        if (failed) {
            if (err)
                *err = ts->werr;
            *rc = -1;
        }
        return NULL;
    }
    struct block *b = &q->slots[q->head];
    pthread_mutex_unlock(&q->mu);
    return b;
}

static int
thread_iread(struct sb_istream *s, void *buf, size_t cap, size_t *got, struct sb_error *err)
{
    struct thread_istream *ts = (struct thread_istream *)s;
    int rc;
    struct block *b = istream_head(ts, &rc, err);
    if (!b)
        return rc;
    size_t n = b->len - ts->pos;
    if (n > cap)
        n = cap;
    memcpy(buf, b->data + ts->pos, n);
    ts->pos += n;
    if (ts->pos == b->len)
        istream_pop(ts);
    *got = n;
    return 0;
}

/* Lends the rest of the head block; it goes back to the worker at the next call. */
static int
thread_iborrow(struct sb_istream *s, const void **data, size_t *len, struct sb_error *err)
{
    struct thread_istream *ts = (struct thread_istream *)s;
    int rc;
    struct block *b = istream_head(ts, &rc, err);
    if (!b)
        return rc;
    *data = b->data + ts->pos;
    *len = b->len - ts->pos;
    ts->lent = true;
    return 0;
}

static void
thread_ifree(struct sb_istream *s)
{
    struct thread_istream *ts = (struct thread_istream *)s;
    if (ts->started) {
        pthread_mutex_lock(&ts->q.mu);
        ts->q.aborted = true;
        pthread_cond_broadcast(&ts->q.changed);
        pthread_mutex_unlock(&ts->q.mu);
        pthread_join(ts->worker, NULL);
    }
    sb_istream_free(ts->up);
    queue_release(&ts->q);
    free(ts);
}

static const struct sb_istream_ops thread_istream_ops = {
    .read = thread_iread, .free = thread_ifree, .borrow = thread_iborrow};

struct sb_istream *
sb_thread_istream_new(struct sb_istream *up, size_t block_size, size_t depth, struct sb_error *err)
{
    struct thread_istream *ts = calloc(1, sizeof(*ts));
    if (!ts) {
        sb_istream_free(up);
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        return NULL;
    }
    ts->base.ops = &thread_istream_ops;
    ts->up = up;
    ts->block_size = block_size;
    if (queue_init(&ts->q, depth) < 0) {
        thread_ifree(&ts->base);
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "cannot allocate pipeline buffers");
        return NULL;
    }
    /* set before the worker runs: it shares a word with flags the worker reads */
    ts->started = true;
    if (pthread_create(&ts->worker, NULL, istream_worker, ts) != 0) {
        ts->started = false;
        thread_ifree(&ts->base);
        sb_error_set(err, SB_E_INTERNAL, errno, "cannot start a pipeline thread");
        return NULL;
    }
    return &ts->base;
}
