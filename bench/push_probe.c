/*
 * push_probe.c: the client side of bench/phase_push.sh, in C so that the
 * client is not what is measured (one node thread reading 11 000 sockets
 * lags the server by a few hundred ms).
 *
 *   push_probe PORT DIR POLL_PATH NPOLLS STREAM_PATH NSTREAMS
 *
 * Opens NPOLLS connections each sending GET POLL_PATH (long-polls), then,
 * once DIR/streams-go exists, NSTREAMS sending GET STREAM_PATH (event
 * streams). Once DIR/go exists, it records for each long-poll the time
 * its answer came and for each stream the time an "event: token" came,
 * and ends when all did (or after 30 s). Writes DIR/probe.out: one line
 * per connection, "p|s <ms since the epoch> <1 if a 200 (polls)>", and
 * "early N" for long-polls answered before go; then creates DIR/done and
 * waits (at most 10 s) for DIR/release before it closes its connections,
 * so that what the server spends on their teardown can be told apart.
 */

#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct conn {
	int		fd;
	int		stream;
	int		ok;
	double		at;
};

static double
now_ms(void)
{
	struct timespec	ts;

	(void)clock_gettime(CLOCK_REALTIME, &ts);
	return (ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6);
}

static int
exists(const char *dir, const char *name)
{
	char		path[1024];
	struct stat	st;

	(void)snprintf(path, sizeof(path), "%s/%s", dir, name);
	return (stat(path, &st) == 0);
}

static void
open_conns(struct conn *c, int from, int n, int stream, int port,
    const char *path, int ep)
{
	struct sockaddr_in	sin;
	struct epoll_event	ev;
	char			req[1024];
	int			i, len, one;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	len = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\n"
	    "Host: 127.0.0.1\r\n\r\n", path);

	for (i = from; i < from + n; i++) {
		c[i].stream = stream;
		c[i].at = 0;
		if ((c[i].fd = socket(AF_INET, SOCK_STREAM, 0)) == -1) {
			perror("socket");
			exit(1);
		}
		one = 1;
		(void)setsockopt(c[i].fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		while (connect(c[i].fd, (struct sockaddr *)&sin,
		    sizeof(sin)) == -1) {
			if (errno != EINTR) {
				perror("connect");
				exit(1);
			}
		}
		if (write(c[i].fd, req, len) != len) {
			perror("write");
			exit(1);
		}
		(void)fcntl(c[i].fd, F_SETFL, O_NONBLOCK);
		ev.events = EPOLLIN;
		ev.data.u32 = i;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev) == -1) {
			perror("epoll_ctl");
			exit(1);
		}
	}
}

int
main(int argc, char **argv)
{
	struct epoll_event	evs[1024];
	struct conn		*c;
	const char		*dir;
	char			buf[65536], path[1024];
	double			t, deadline;
	ssize_t			r;
	int			port, np, ns, ep, i, n, left, go, early;
	int			streams_open;
	FILE			*out;

	if (argc != 7) {
		fprintf(stderr, "usage: push_probe PORT DIR POLL_PATH NPOLLS "
		    "STREAM_PATH NSTREAMS\n");
		return (2);
	}
	port = atoi(argv[1]);
	dir = argv[2];
	np = atoi(argv[4]);
	ns = atoi(argv[6]);
	if ((c = calloc(np + ns, sizeof(*c))) == NULL ||
	    (ep = epoll_create1(0)) == -1) {
		perror("init");
		return (1);
	}

	open_conns(c, 0, np, 0, port, argv[3], ep);
	streams_open = 0;
	go = 0;
	early = 0;
	left = np + ns;
	deadline = 0;
	for (;;) {
		if (!streams_open && exists(dir, "streams-go")) {
			open_conns(c, np, ns, 1, port, argv[5], ep);
			streams_open = 1;
		}
		if (streams_open && !go && exists(dir, "go")) {
			go = 1;
			deadline = now_ms() + 30000;
		}
		if (go && (left == 0 || now_ms() > deadline))
			break;

		n = epoll_wait(ep, evs, 1024, go ? 1 : 20);
		t = now_ms();
		for (i = 0; i < n; i++) {
			struct conn	*k = &c[evs[i].data.u32];

			r = read(k->fd, buf, sizeof(buf) - 1);
			if (r <= 0) {
				(void)epoll_ctl(ep, EPOLL_CTL_DEL, k->fd, NULL);
				continue;
			}
			buf[r] = '\0';
			if (!go) {
				if (!k->stream)
					early++;
				continue;
			}
			if (k->at != 0)
				continue;
			if (k->stream && strstr(buf, "event: token") == NULL)
				continue;
			k->at = t;
			k->ok = !strncmp(buf, "HTTP/1.1 200", 12);
			left--;
		}
	}

	(void)snprintf(path, sizeof(path), "%s/probe.out", dir);
	if ((out = fopen(path, "w")) == NULL) {
		perror(path);
		return (1);
	}
	fprintf(out, "early %d\n", early);
	for (i = 0; i < np + ns; i++) {
		if (c[i].at != 0)
			fprintf(out, "%c %.3f %d\n", c[i].stream ? 's' : 'p',
			    c[i].at, c[i].ok);
	}
	fclose(out);

	(void)snprintf(path, sizeof(path), "%s/done", dir);
	if ((out = fopen(path, "w")) != NULL)
		fclose(out);
	deadline = now_ms() + 10000;
	while (!exists(dir, "release") && now_ms() < deadline)
		(void)usleep(10000);
	for (i = 0; i < np + ns; i++)
		close(c[i].fd);

	return (0);
}
