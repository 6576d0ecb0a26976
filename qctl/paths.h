/*
 * paths.h - where an installed qctl finds its parts: tried after the
 * environment and the build tree beside the binary.  `make` writes
 * paths-config.h (build/) from PREFIX and friends; a file compiled
 * without it (a test driver) gets make's defaults.
 */
#ifndef QCTL_PATHS_H
#define QCTL_PATHS_H

#if defined(__has_include)
#if __has_include("paths-config.h")
#include "paths-config.h"
#endif
#endif

/* the helper programs and the guest agent */
#ifndef QCTL_LIBEXECDIR
#define QCTL_LIBEXECDIR "/usr/local/libexec/qctl"
#endif
/* image back ends and definitions; images/ holds installed images */
#ifndef QCTL_DATADIR
#define QCTL_DATADIR "/usr/local/share/qctl"
#endif
/* images `qctl image build` makes for an installed qctl */
#ifndef QCTL_IMAGEDIR
#define QCTL_IMAGEDIR "/var/lib/qctl/images"
#endif

#endif
