/* maps.h: every map of the data plane. All are pinned by name under pin_path. */
#ifndef DSRLB_MAPS_H
#define DSRLB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "consts.h"
#include "structs.h"

/* VIP:port -> meta, one map per family. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_VIPS * 8);
	__type(key, struct vip_key4);
	__type(value, struct vip_meta);
} vips4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_VIPS * 8);
	__type(key, struct vip_key);
	__type(value, struct vip_meta);
} vips6 SEC(".maps");

/* Maglev ring of one VIP: slot -> real id. The control plane builds a fresh
 * inner map and swaps it into rings with one update, so the program never
 * sees a half-written table. max_entries is set to ring_size at load time. */
struct ring {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65537);
	__type(key, __u32);
	__type(value, __u32);
};

/* vip id -> its ring; no entry = empty ring = XDP_PASS. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, MAX_VIPS);
	__type(key, __u32);
	__array(values, struct ring);
} rings SEC(".maps");

/* real id -> MAC and state. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_REALS);
	__type(key, __u32);
	__type(value, struct real_entry);
} reals SEC(".maps");

/* 5-tuple -> real id, one table per family. LRU with per-CPU LRU lists
 * (BPF_F_NO_COMMON_LRU): each CPU evicts its own oldest flows, values are
 * shared so a flow that moves to another CPU keeps its backend. max_entries
 * is flow_table_size at load time. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__uint(max_entries, 1048576);
	__type(key, struct flow_key4);
	__type(value, __u32);
} flows4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__uint(max_entries, 1048576);
	__type(key, struct flow_key);
	__type(value, __u32);
} flows6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_VIPS);
	__type(key, __u32);
	__type(value, struct counters);
} vip_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_REALS);
	__type(key, __u32);
	__type(value, struct counters);
} real_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, G_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} global_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_settings);
} settings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct flood_window);
} flood SEC(".maps");

/* Written by clock_sample for the control plane's jiffies conversion. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct clock_pair);
} clock SEC(".maps");

#endif
