// The floor of one sync round in C: read a request, pwrite it, fdatasync,
// send an 8-byte reply. One thread, blocking calls, as pg_receivewal does.
// Usage: server-c PORT FILE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: server-c PORT FILE\n"); return 2; }
  int fd = open(argv[2], O_RDWR | O_CREAT, 0600);
  int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[1])), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  if (fd < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1)) { perror("setup"); return 1; }
  printf("ready\n"); fflush(stdout);
  int s = accept(ls, NULL, NULL);
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  static char buf[1 << 16];
  off_t off = 0;
  for (;;) {
    ssize_t n = recv(s, buf, sizeof buf, 0);
    if (n <= 0) return 0;
    if (pwrite(fd, buf, n, off) != n || fdatasync(fd)) { perror("write"); return 1; }
    off = (off + n) % (16 << 20);
    if (send(s, &off, 8, 0) != 8) return 1;
  }
}
