/* Placeholder until the config module lands. */
typedef int sb_config_placeholder;
