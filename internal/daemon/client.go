package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"syscall"

	"github.com/dsrlb/dsrlb/internal/config"
)

// ErrNotRunning means no daemon answers on the API socket.
var ErrNotRunning = errors.New("dsrlb is not running")

// Client talks to a running daemon over its API socket.
type Client struct {
	Socket string
	http   *http.Client
}

// NewClient returns a client of the daemon listening on socket.
func NewClient(socket string) *Client {
	return &Client{Socket: socket, http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", socket)
		}}}}
}

func (c *Client) do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://dsrlb"+path, rd)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w (no daemon on %s: start it with `dsrlb run`)", ErrNotRunning, c.Socket)
		}
		return fmt.Errorf("api %s: %w", c.Socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s", bytes.TrimSpace(msg))
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

// Status fetches the daemon's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, "/status", nil, &st)
	return st, err
}

// Drain asks the daemon for an admin drain (or its end).
func (c *Client) Drain(ctx context.Context, req DrainRequest) error {
	return c.do(ctx, http.MethodPost, "/drain", req, nil)
}

// CheckDrainTarget checks that backend exists and, when vip is set, that
// the VIP exists and lists the backend (the daemon and the CLI both ask).
func CheckDrainTarget(cfg *config.Config, vip, backend string) error {
	if _, ok := cfg.Backend(backend); !ok {
		var names []string
		for _, b := range cfg.Backends {
			names = append(names, b.Name)
		}
		return fmt.Errorf("%s: no backend %q (backends: %v)", cfg.Path, backend, names)
	}
	if vip == "" {
		return nil
	}
	v, ok := cfg.VIP(vip)
	if !ok {
		return fmt.Errorf("%s: no vip %q", cfg.Path, vip)
	}
	if !slices.ContainsFunc(v.Backends, func(vb config.VIPBackend) bool { return vb.Name == backend }) {
		return fmt.Errorf("%s: vip %q does not list backend %q", cfg.Path, vip, backend)
	}
	return nil
}
