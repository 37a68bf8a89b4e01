// Package e2e holds dsrlb's end-to-end tests: the real binary as a daemon
// in a network-namespace lab, XDP on a veth, simulated Exchange backends,
// mail sent from client namespaces through the VIPs.
package e2e
