package main

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/dsrlb/dsrlb/internal/config"
	"github.com/dsrlb/dsrlb/internal/loopback"
)

func backendScriptConfig() *config.Config {
	ip := netip.MustParseAddr
	return &config.Config{
		Backends: []config.Backend{
			{Name: "EX1", Address: ip("192.0.2.11"), OS: config.OSWindows},
			{Name: "MX1", Address: ip("192.0.2.21"), OS: config.OSLinux},
			{Name: "NOOS", Address: ip("192.0.2.31")},
		},
		VIPs: []config.VIP{{Name: "internet", Address: ip("198.51.100.25"), Ports: []uint16{25},
			Backends: []config.VIPBackend{{Name: "EX1"}, {Name: "MX1"}, {Name: "NOOS"}}}},
	}
}

func TestBackendScript(t *testing.T) {
	c := backendScriptConfig()
	for _, tc := range []struct {
		name, backend string
		os            config.OS
		opts          loopback.Options
		code          int
		stdout        string // a line the output must contain
		stderr        string
	}{
		{name: "os from config (windows)", backend: "EX1", code: exitOK, stdout: "[CmdletBinding(SupportsShouldProcess)]"},
		{name: "os from config (linux)", backend: "MX1", code: exitOK, stdout: "#!/bin/sh"},
		{name: "--os overrides", backend: "EX1", os: config.OSLinux, code: exitOK, stdout: "#!/bin/sh"},
		{name: "remove", backend: "MX1", opts: loopback.Options{Remove: true}, code: exitOK, stdout: "rollback complete"},
		{name: "exchange", backend: "EX1", opts: loopback.Options{Exchange: true}, code: exitOK, stdout: "# New-ReceiveConnector"},
		{name: "exchange on linux", backend: "MX1", opts: loopback.Options{Exchange: true}, code: exitError, stderr: "Windows"},
		{name: "unknown backend", backend: "EX9", code: exitError, stderr: `"EX9" is not defined in the config (known backends: EX1, MX1, NOOS)`},
		{name: "no os", backend: "NOOS", code: exitError, stderr: "--os"},
		{name: "bad os", backend: "EX1", os: "beos", code: exitError, stderr: "unknown OS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := backendScript(c, tc.backend, tc.os, tc.opts, &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.stdout) || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stdout %.80q (want %q), stderr %q (want %q)", stdout.String(), tc.stdout, stderr.String(), tc.stderr)
			}
			if tc.code != exitOK && stdout.Len() != 0 {
				t.Errorf("a failed run printed a script: %.80q", stdout.String())
			}
		})
	}
}

func TestCmdBackendScriptUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"EX1", "EX2"}, {"--bogus", "EX1"}} {
		var stdout, stderr bytes.Buffer
		if code := cmdBackendScript(args, &stdout, &stderr); code != exitError {
			t.Errorf("backend-script %q: exit %d, want %d", args, code, exitError)
		}
	}
}
