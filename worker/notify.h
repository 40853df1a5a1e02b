/* notify.h: sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET.
 *
 * systemd (Type=notify) and other supervisors pass a unix datagram socket in
 * NOTIFY_SOCKET (a path, or "@name" for the abstract namespace); "READY=1"
 * sent there says the service is up. Without NOTIFY_SOCKET this does nothing
 * and returns 0. Returns -1 when the socket is set but the send failed. */
#ifndef LASH_WORKER_NOTIFY_H
#define LASH_WORKER_NOTIFY_H

int lash_sd_notify(const char *state);

#endif
