/* Placeholder until the cron module lands. */
typedef int sb_cron_placeholder;
