/* commands.h — the command table of `tidemark`.  A new report adds its
 * entry in commands.c and its tm_cmd_* in cli.h. */
#ifndef TM_COMMANDS_H
#define TM_COMMANDS_H

typedef struct tm_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} tm_command;

extern const tm_command tm_commands[];

#endif /* TM_COMMANDS_H */
