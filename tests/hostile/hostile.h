/*
 * hostile.h - the test-only misbehaviour of guestagent-hostile.
 *
 * Compiled only into build/guestagent-hostile (-DQCTL_HOSTILE), which is
 * packed only into the test image images/out/hostile.  The production
 * agent has no hook and no code of this (see tests/hostile/hostile.c).
 */
#ifndef GA_HOSTILE_H
#define GA_HOSTILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent.h"

/*
 * Look at an EXEC before it is served: a shell script starting with
 * "#hostile MODE" is not run; the agent misbehaves as MODE says instead.
 * Returns true when the EXEC was taken (some modes never return), false
 * to serve it normally.
 */
bool hostile_exec(struct ga_port *p, uint32_t id, const void *pl, size_t len);
/*
 * Send HELLO as the mode of the kernel command line ("qctl.hostile=MODE",
 * for what happens before any EXEC) says; false to send the normal one.
 */
bool hostile_hello(struct ga_port *p);

#endif
