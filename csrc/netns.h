/*
 * Opening a SOCK_DIAG socket inside another network namespace.
 *
 * A socket keeps the namespace it was created in for life, so a thread can enter a namespace,
 * open the socket and come back; the fd then dumps that namespace from anywhere. setns() only
 * moves the calling thread, which is why Python calls these from one dedicated opener thread,
 * never from the event loop (cffi releases the GIL for the call).
 */
#ifndef XTCP_NETNS_H
#define XTCP_NETNS_H

#include <stdint.h>

#define XTCP_SO_NETNS_COOKIE 71        /* SOL_SOCKET option, Linux >= 5.14 */

/* BEGIN CDEF */
/* Open a non-blocking, close-on-exec NETLINK_SOCK_DIAG socket in the namespace of nsfd (an fd
 * of a /proc/<pid>/ns/net or bind-mounted namespace file), connected to the kernel (nl.h: only
 * the kernel may feed it); nsfd < 0 opens it in the calling thread's own namespace without
 * setns. *drained counts datagrams someone slipped in before it was connected (discarded).
 * Returns the socket fd, or -errno. Returns -ENOTRECOVERABLE (socket closed) when the thread
 * could not go back to its own namespace: the caller must retire that thread, it now lives in
 * the wrong namespace. The one way this package opens a netlink socket. */
int xtcp_open_diag_socket_in(int nsfd, uint32_t *drained);

/* SO_NETNS_COOKIE of a socket's namespace into *out (unique per boot). Returns 0 or -errno
 * (-ENOPROTOOPT before Linux 5.14). */
int xtcp_netns_cookie(int fd, uint64_t *out);
/* END CDEF */

#endif
