"""The overlay suite (issue 8): vpcd boxes in network namespaces joined by a veth underlay, and the Linux kernel's
vxlan device as a peer. Needs root, the built vpcd ($VPCD_BUILD_DIR), nsenter (util-linux), iperf3, ping, tc, bridge
(iproute2). Everything it creates is named with the prefix "vxl<pid>" (test_two_boxes.py) or "rtover<pid>"
(test_routed_overlay.py: routing between subnets across the boxes) and removed at the end, also on failure."""
