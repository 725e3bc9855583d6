// A guest stand-in for a vpcd tap NIC (bench/e2e/compare.py): attaches to the tap as a hypervisor would (one queue,
// IFF_VNET_HDR, TSO/checksum offloads accepted) and relays every frame, virtio_net_hdr included, to and from a veth
// end whose peer is eth0 of a guest namespace, so iperf3, ping and trafgen run in that namespace unchanged. It is one
// extra hop that a real guest does not have (QEMU with vhost-net moves frames in the kernel), so figures through it
// are lower bounds for tap NICs.
//
// Usage (run inside the namespace holding VETH_END, with the tap in the caller's namespace passed as an open fd is not
// needed: the tap is looked up by name before switching): tap_guest_relay TAP NETNS_PATH VETH_END SECONDS
// Exits after SECONDS (bounded), or on a fatal error.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_BYTES (65536 + 256)

static int open_tap(const char* name) {
  for (int mq = 1; mq >= 0; --mq) {
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (mq ? IFF_MULTI_QUEUE : 0);
    if (ioctl(fd, TUNSETIFF, &ifr) == 0) {
      int sz = 10;
      unsigned off = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
      if (ioctl(fd, TUNSETVNETHDRSZ, &sz) != 0 || ioctl(fd, TUNSETOFFLOAD, off) != 0) {
        perror("tap offloads");
        return -1;
      }
      return fd;
    }
    close(fd);
  }
  return -1;
}

static int open_packet(const char* ifname) {
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ALL));
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one);
  setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
  setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
  // A small receive queue: a flood the relay cannot keep up with is dropped here rather than queued for seconds
  // in front of the next ping (room for a few GSO super-frames).
  int rbuf = 512 << 10, sbuf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rbuf, sizeof rbuf);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sbuf, sizeof sbuf);
  struct sockaddr_ll sll;
  memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = (int)if_nametoindex(ifname);
  if (sll.sll_ifindex == 0 || bind(fd, (struct sockaddr*)&sll, sizeof sll) != 0) return -1;
  return fd;
}

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s TAP NETNS_PATH VETH_END SECONDS\n", argv[0]);
    return 2;
  }
  int tap = open_tap(argv[1]);
  if (tap < 0) {
    perror("tap");
    return 1;
  }
  int ns = open(argv[2], O_RDONLY | O_CLOEXEC);
  if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) {
    perror("setns");
    return 1;
  }
  int pk = open_packet(argv[3]);
  if (pk < 0) {
    perror("packet socket");
    return 1;
  }
  const time_t end = time(NULL) + atoi(argv[4]);
  static char buf[BUF_BYTES];
  struct pollfd pfd[2] = {{tap, POLLIN, 0}, {pk, POLLIN, 0}};
  printf("ready\n");
  fflush(stdout);
  while (time(NULL) < end) {
    if (poll(pfd, 2, 200) <= 0) continue;
    for (int k = 0; k < 256; ++k) {  // tap -> guest
      ssize_t n = read(tap, buf, sizeof buf);
      if (n <= 0) break;
      send(pk, buf, (size_t)n, MSG_DONTWAIT);
    }
    for (int k = 0; k < 256; ++k) {  // guest -> tap
      ssize_t n = recv(pk, buf, sizeof buf, MSG_DONTWAIT);
      if (n <= 0) break;
      if (write(tap, buf, (size_t)n) < 0 && errno != EAGAIN) break;
    }
  }
  return 0;
}
