// Package netif is dsrlb's netlink plumbing on the balancer's interface:
// attaching the XDP program through a pinned bpf_link, the VIP addresses the
// balancer owns (manage_vip_addresses), and the backends' MAC addresses,
// taken from the kernel's neighbour table (DESIGN sections 2 and 6).
//
// # Namespaces
//
// Every function acts in the network namespace of the calling OS thread, as
// the netlink and bpf system calls do: the daemon runs in one namespace, so
// any goroutine will do; a test switches a locked thread into a lab
// namespace first (lab.Host.Do). [NewNeighbors] remembers the namespace it
// was called in, so a [Neighbors] may then be used from any goroutine.
//
// # XDP
//
// [AttachXDP] attaches with a bpf_link pinned on bpffs, and closes its own
// descriptor: the pin alone keeps the program attached after dsrlb exits,
// and the next dsrlb replaces the program inside the same link (no packet
// lost, maps and flows kept). [DetachXDP] removes the pin and detaches.
//
// # Backend MACs
//
// The balancer forwards to backends at L2 only, with the MAC its kernel's
// neighbour table holds for each backend address. [Neighbors.Resolve] reads
// the table, and for an address without a usable entry asks the kernel to
// resolve it (the NTF_USE flag of `ip neigh replace ADDR dev IF use`): ARP or
// neighbour discovery only, no data is sent to the backend.
//
// Keeping entries fresh: the kernel confirms a neighbour only when its own
// traffic gets replies, and the forwarded frames never touch the balancer's
// IP stack, so entries age to STALE. STALE still counts as known (the MAC has
// not been contradicted), but Resolve also marks every STALE entry used,
// which makes the kernel re-confirm it with a unicast ARP request or
// neighbour solicitation (DELAY, then PROBE, after delay_first_probe_time,
// 5 s by default): a backend that answers goes back to REACHABLE, one that
// is gone (or no longer answers ARP/ND) ends FAILED after ucast_probes
// unanswered probes, and from then on has no MAC, with the reason
// "no ARP/ND reply" ([Reason]). The daemon's health probes (TCP to the
// backend's own address) refresh the entries too. [Neighbors.Watch] signals
// such transitions at once, so the daemon does not wait for its next tick.
package netif
