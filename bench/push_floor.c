/*
 * push_floor.c: the floor under bench/phase_push.sh's wake figure. What
 * do N answers over loopback TCP cost when the server does nothing else:
 * no HTTP, no kiln, no Kore, one send() of a ready buffer each?
 *
 *   push_floor N WORKERS BYTES
 *
 * Opens N connections to itself; WORKERS forked senders accept them (as
 * kiln's workers hold them), the client ends stay in one epoll reader
 * (as bench/push_probe.c keeps them). Then, at once, each
 * sender writes BYTES on each of its connections; the reader notes when
 * each arrived. Prints the arrival times from the start (p50/p99/max ms)
 * and the senders' CPU (user and system, ms in all, µs per answer).
 */

#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

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

static double
now_ms(void)
{
	struct timespec	ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6);
}

static int
cmp(const void *a, const void *b)
{
	double	x = *(const double *)a, y = *(const double *)b;

	return (x < y ? -1 : x > y);
}

static double
cpu_ms(void)
{
	struct rusage	ru;

	(void)getrusage(RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3 +
	    ru.ru_stime.tv_sec * 1e3 + ru.ru_stime.tv_usec / 1e3);
}

/*
 * Accept n connections, say so on ready, wait for go, answer each; the
 * CPU the answers took (ms) goes back on ready.
 */
static void
sender(int lfd, int n, int ready, int go, size_t bytes)
{
	char		*msg, c;
	int		i, one, *srv;
	double		cpu;

	if ((msg = malloc(bytes)) == NULL ||
	    (srv = calloc(n, sizeof(int))) == NULL)
		exit(1);
	memset(msg, 'x', bytes);
	for (i = 0; i < n; i++) {
		if ((srv[i] = accept(lfd, NULL, NULL)) == -1) {
			perror("accept");
			exit(1);
		}
		one = 1;
		(void)setsockopt(srv[i], IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
	}
	if (write(ready, "r", 1) != 1 || read(go, &c, 1) != 1)
		exit(1);
	cpu = cpu_ms();
	for (i = 0; i < n; i++) {
		if (send(srv[i], msg, bytes, 0) != (ssize_t)bytes) {
			perror("send");
			exit(1);
		}
	}
	cpu = cpu_ms() - cpu;
	if (write(ready, &cpu, sizeof(cpu)) != sizeof(cpu))
		exit(1);
	exit(0);
}

int
main(int argc, char **argv)
{
	struct sockaddr_in	sin;
	struct epoll_event	ev, evs[1024];
	socklen_t		len;
	double			t0, *at, cpu, one;
	char			buf[65536];
	int			n, nw, lfd, ep, *cli, pfd[2], rfd[2], i, k;
	int			left;
	size_t			bytes;
	ssize_t			r;

	if (argc != 4) {
		fprintf(stderr, "usage: push_floor N WORKERS BYTES\n");
		return (2);
	}
	n = atoi(argv[1]);
	nw = atoi(argv[2]);
	bytes = (size_t)atol(argv[3]);
	if (n < 1 || nw < 1 || bytes < 1 || bytes > sizeof(buf))
		return (2);
	cli = calloc(n, sizeof(int));
	at = calloc(n, sizeof(double));
	if (cli == NULL || at == NULL)
		return (1);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) == -1 ||
	    bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(lfd, 4096) == -1) {
		perror("listen");
		return (1);
	}
	len = sizeof(sin);
	(void)getsockname(lfd, (struct sockaddr *)&sin, &len);
	if ((ep = epoll_create1(0)) == -1 || pipe(pfd) == -1 ||
	    pipe(rfd) == -1)
		return (1);

	for (k = 0; k < nw; k++) {
		switch (fork()) {
		case -1:
			perror("fork");
			return (1);
		case 0:
			close(pfd[1]);
			close(rfd[0]);
			sender(lfd, n / nw + (k < n % nw), rfd[1], pfd[0],
			    bytes);
		}
	}
	close(pfd[0]);
	close(rfd[1]);
	close(lfd);

	for (i = 0; i < n; i++) {
		if ((cli[i] = socket(AF_INET, SOCK_STREAM, 0)) == -1 ||
		    connect(cli[i], (struct sockaddr *)&sin,
		    sizeof(sin)) == -1) {
			perror("connect");
			return (1);
		}
		(void)fcntl(cli[i], F_SETFL, O_NONBLOCK);
		ev.events = EPOLLIN;
		ev.data.u32 = i;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, cli[i], &ev) == -1)
			return (1);
	}
	for (k = 0; k < nw; k++) {
		if (read(rfd[0], buf, 1) != 1)
			return (1);
	}
	usleep(100000);

	t0 = now_ms();
	for (k = 0; k < nw; k++) {
		if (write(pfd[1], "g", 1) != 1)
			return (1);
	}
	left = n;
	while (left > 0) {
		k = epoll_wait(ep, evs, 1024, 5000);
		if (k <= 0) {
			fprintf(stderr, "push_floor: %d answers missing\n",
			    left);
			return (1);
		}
		for (i = 0; i < k; i++) {
			int	j = evs[i].data.u32;

			r = read(cli[j], buf, sizeof(buf));
			if (r <= 0 || at[j] != 0)
				continue;
			at[j] = now_ms() - t0;
			(void)epoll_ctl(ep, EPOLL_CTL_DEL, cli[j], NULL);
			left--;
		}
	}
	cpu = 0;
	for (k = 0; k < nw; k++) {
		if (read(rfd[0], &one, sizeof(one)) != sizeof(one))
			return (1);
		cpu += one;
	}
	while (wait(NULL) > 0)
		;

	qsort(at, n, sizeof(double), cmp);
	printf("floor: %d loopback answers of %zu bytes from %d senders: "
	    "start -> arrival p50 %.1f p99 %.1f max %.1f ms; senders' CPU "
	    "%.0f ms (%.1f us per answer)\n", n, bytes, nw, at[(n - 1) / 2],
	    at[(int)(n * 0.99 + 0.5) - 1], at[n - 1], cpu, cpu * 1000 / n);

	return (0);
}
