// Package maps owns dsrlb's data plane: the compiled XDP program (bpf2go
// bindings committed beside this file), typed access to every map, the
// Maglev table build and the atomic ring swap.
package maps

//go:generate go tool bpf2go -cc clang-19 -cflags "-O2 -g -Wall -Werror" -target bpfel -type vip_key -type vip_key4 -type flow_key4 -type vip_meta -type real_entry -type flow_key -type counters -type lb_settings -type clock_pair dsrlb ../../bpf/dsrlb.c -- -I/usr/include/x86_64-linux-gnu -I../../bpf
//go:generate go tool bpf2go -cc clang-19 -cflags "-O2 -g -Wall -Werror" -target bpfel bounce ../../bpf/bounce.c -- -I/usr/include/x86_64-linux-gnu
