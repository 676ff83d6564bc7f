package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Health is the worker's readiness: it has joined its consumer group, the
// broker answers, and the model is loaded.
type Health struct {
	joined, model atomic.Bool
	// Broker checks that a broker answers; nil counts as reachable.
	Broker func(context.Context) error

	mu      sync.Mutex
	checked time.Time
	last    error
}

// SetJoined records joining (true) or leaving (false) the group.
func (h *Health) SetJoined(v bool) { h.joined.Store(v) }

// SetModelLoaded records that the model is ready to serve.
func (h *Health) SetModelLoaded(v bool) { h.model.Store(v) }

// Check returns every failing readiness check by name.
func (h *Health) Check(ctx context.Context) map[string]error {
	fails := map[string]error{}
	if !h.joined.Load() {
		fails["group"] = errors.New("not a member of the consumer group yet")
	}
	if !h.model.Load() {
		fails["model"] = errors.New("model not loaded")
	}
	if err := h.broker(ctx); err != nil {
		fails["broker"] = err
	}
	return fails
}

// broker runs the broker check at most once a second.
func (h *Health) broker(ctx context.Context) error {
	if h.Broker == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if time.Since(h.checked) < time.Second {
		return h.last
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	h.last, h.checked = h.Broker(ctx), time.Now()
	return h.last
}

// Server serves /metrics, /healthz and /readyz.
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// Serve listens on addr and serves in the background.
func Serve(addr string, m *Metrics, h *Health, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics.addr: listening on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	if m != nil {
		mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		fails := h.Check(r.Context())
		if len(fails) == 0 {
			fmt.Fprintln(w, "ready")
			return
		}
		names := make([]string, 0, len(fails))
		for n := range fails {
			names = append(names, n)
		}
		sort.Strings(names)
		var b strings.Builder
		for _, n := range names {
			fmt.Fprintf(&b, "%s: %v\n", n, fails[n])
		}
		http.Error(w, strings.TrimSuffix(b.String(), "\n"), http.StatusServiceUnavailable)
	})
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln: ln}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server.
func (s *Server) Close(ctx context.Context) error { return s.srv.Shutdown(ctx) }
