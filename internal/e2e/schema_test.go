package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dsrlb/dsrlb/internal/daemon"
	"github.com/dsrlb/dsrlb/internal/lab"
	"github.com/dsrlb/dsrlb/internal/labnode"
)

// validate checks v against the subset of JSON Schema that
// docs/status.schema.json uses: type (one or a list), required,
// properties, items, enum and format date-time.
func validate(schema map[string]any, v any, path string) error {
	if t, ok := schema["type"]; ok {
		types := []string{}
		switch t := t.(type) {
		case string:
			types = append(types, t)
		case []any:
			for _, x := range t {
				types = append(types, x.(string))
			}
		}
		if !slices.Contains(types, jsonType(v)) && !(jsonType(v) == "integer" && slices.Contains(types, "number")) {
			return fmt.Errorf("%s: %s, want %v", path, jsonType(v), types)
		}
	}
	if enum, ok := schema["enum"].([]any); ok && !slices.Contains(enum, v) {
		return fmt.Errorf("%s: %v not in %v", path, v, enum)
	}
	if schema["format"] == "date-time" {
		if s, ok := v.(string); ok {
			if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
				return fmt.Errorf("%s: %v", path, err)
			}
		}
	}
	if obj, ok := v.(map[string]any); ok {
		for _, r := range asList(schema["required"]) {
			if _, ok := obj[r.(string)]; !ok {
				return fmt.Errorf("%s: missing %q", path, r)
			}
		}
		props, _ := schema["properties"].(map[string]any)
		for k, sub := range props {
			if x, ok := obj[k]; ok {
				if err := validate(sub.(map[string]any), x, path+"."+k); err != nil {
					return err
				}
			}
		}
	}
	if arr, ok := v.([]any); ok {
		if items, ok := schema["items"].(map[string]any); ok {
			for i, x := range arr {
				if err := validate(items, x, fmt.Sprintf("%s[%d]", path, i)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func asList(v any) []any { l, _ := v.([]any); return l }

func jsonType(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64:
		if v == math.Trunc(v) {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "unknown"
}

func loadSchema(t *testing.T) map[string]any {
	b, err := os.ReadFile("../../docs/status.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestValidatorCatchesBreaks proves the validator can fail.
func TestValidatorCatchesBreaks(t *testing.T) {
	s := loadSchema(t)
	for name, doc := range map[string]string{
		"no vips":       `{"node":{}}`,
		"bad state":     `{"vips":[{"name":"a","address":"x","ports":[25],"persistence":"none","backends":[{"name":"b","address":"x","state":"sick","reason":"","last_reply":"","latency_ms":1,"checked_at":null,"weight":1,"priority":1,"ring_share":1,"packets":1,"bytes":1,"new_flows":1,"last_packet_at":null}]}],"node":{"interface":"e","xdp_mode":"native","config":"c","reload_error":"","counters":{}}}`,
		"string ports":  `{"vips":[{"name":"a","address":"x","ports":["25"],"persistence":"none","backends":[]}],"node":{"interface":"e","xdp_mode":"native","config":"c","reload_error":"","counters":{}}}`,
		"missing reply": `{"vips":[{"name":"a","address":"x","ports":[25],"persistence":"none","backends":[{"name":"b"}]}],"node":{"interface":"e","xdp_mode":"native","config":"c","reload_error":"","counters":{}}}`,
	} {
		var v any
		json.Unmarshal([]byte(doc), &v)
		if validate(s, v, "$") == nil {
			t.Errorf("%s: validator accepted a broken document", name)
		}
	}
}

// TestStatusContractAndMetrics: `dsrlb status --json` matches the schema
// (with traffic, a draining backend and null times), the table names every
// backend, and the metrics endpoint serves the counters.
func TestStatusContractAndMetrics(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.start()
	e.waitAllUp()
	e.send(e.lab.Clients[0], labnode.InternetAddr, "sender@outside.example", 10)
	e.waitFor("per-second rates after the burst", 4*time.Second, func(st daemon.Status) bool {
		var fps float64
		for _, b := range st.VIPs[0].Backends {
			fps += b.NewFlowsPerSec
		}
		return fps > 0
	})
	e.smtp[2].SetMode(lab.ModeBackPressureAll)
	e.waitFor("EX3 draining", 5*time.Second, hasState(labnode.InternetVIP, "EX3", "draining", "452"))

	out, err := e.node.Run("status", "--json")
	if err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	var v any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, out)
	}
	if err := validate(loadSchema(t), v, "$"); err != nil {
		t.Fatalf("status --json breaks the contract: %v\n%s", err, out)
	}
	table, err := e.node.Run("status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"VIP internet", "EX1", "EX2", "EX3", "draining", "452 4.3.1", "250 2.1.0 Sender OK", "NEW/S", "PKTS/S"} {
		if !strings.Contains(table, want) {
			t.Errorf("status table lacks %q:\n%s", want, table)
		}
	}

	// Dial inside the LB namespace; net/http dials from other threads.
	conn, err := e.lab.LB.DialTCP(netip.MustParseAddrPort("127.0.0.1:9425"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return conn, nil }}}
	resp, err := client.Get("http://127.0.0.1:9425/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(b)
	for _, want := range []string{
		`dsrlb_backend_packets_total{backend="EX1",vip="internet"}`,
		`dsrlb_backend_new_flows_total{backend="EX2",vip="internet"}`,
		`dsrlb_backend_state{backend="EX3",state="draining",vip="internet"} 1`,
		`dsrlb_probe_latency_seconds{backend="EX1",vip="internet"}`,
		`dsrlb_xdp_packets_total{kind="pass"}`,
		`dsrlb_config_reloads_total{result="failure"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestStatusWithoutDaemon: a clear message, exit 2.
func TestStatusWithoutDaemon(t *testing.T) {
	out, err := run(binary, "status", "--socket", t.TempDir()+"/none.sock")
	if err == nil || !strings.Contains(out, "dsrlb is not running") {
		t.Fatalf("got %v: %s", err, out)
	}
}
