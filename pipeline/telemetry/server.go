package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Health is the worker's readiness and liveness. It answers probes from
// what the worker last reported, never from a network call of its own: the
// worker checks the broker and its topics in the background (every
// worker.health_interval) and records the results here.
//
// Ready: the worker has joined its consumer group, a broker answered its
// last metadata request, its topics exist, the model is loaded, and it is
// not stalled. Live: it is not stalled (it made progress within
// worker.stall_timeout while holding partitions with lag).
type Health struct {
	joined, model atomic.Bool

	mu      sync.Mutex
	checked bool  // a broker check has run
	broker  error // the last broker check
	topics  error // topics that are missing
	stalled error
}

// SetJoined records joining (true) or leaving (false) the group.
func (h *Health) SetJoined(v bool) { h.joined.Store(v) }

// SetModelLoaded records that the model is ready to serve.
func (h *Health) SetModelLoaded(v bool) { h.model.Store(v) }

// SetBroker records the result of a broker check: nil when a broker
// answered a metadata request.
func (h *Health) SetBroker(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checked, h.broker = true, err
}

// SetTopics records whether the worker's topics exist (nil: they do).
func (h *Health) SetTopics(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.topics = err
}

// SetStalled records that the worker has stopped making progress (nil:
// it has not).
func (h *Health) SetStalled(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stalled = err
}

// Live returns why the worker should be restarted, or nil.
func (h *Health) Live() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stalled
}

// Check returns every failing readiness check by name.
func (h *Health) Check(context.Context) map[string]error {
	fails := map[string]error{}
	if !h.joined.Load() {
		fails["group"] = errors.New("not a member of the consumer group")
	}
	if !h.model.Load() {
		fails["model"] = errors.New("model not loaded")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case !h.checked:
		fails["broker"] = errors.New("no broker checked yet")
	case h.broker != nil:
		fails["broker"] = h.broker
	}
	if h.topics != nil {
		fails["topics"] = h.topics
	}
	if h.stalled != nil {
		fails["stalled"] = h.stalled
	}
	return fails
}

// Server serves /metrics, /healthz, /readyz, and the status page: / (with
// its script and style) and /status.json.
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// ServeOption changes a default of Serve.
type ServeOption func(*serveOptions)

type serveOptions struct{ status *Status }

// WithStatus serves s at /status.json; the default is an empty status
// (no model, no history), for which the page says so.
func WithStatus(s *Status) ServeOption {
	return func(o *serveOptions) { o.status = s }
}

// Serve listens on addr and serves in the background.
func Serve(addr string, m *Metrics, h *Health, log *slog.Logger, opts ...ServeOption) (*Server, error) {
	o := serveOptions{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.status == nil {
		o.status = NewStatus()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics.addr: listening on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	if m != nil {
		mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	}
	mux.Handle("/status.json", o.status)
	mux.Handle("/", pageHandler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := h.Live(); err != nil {
			http.Error(w, fmt.Sprintf("stalled: %v", err), http.StatusServiceUnavailable)
			return
		}
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

// URL is the status page's address: http://ADDR/, with a loopback host in
// place of an unspecified one (metrics.addr ":9464" or "0.0.0.0:9464"),
// so that it can be opened on the worker's machine.
func (s *Server) URL() string {
	addr := s.ln.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(addr.Port)) + "/"
}

// Close stops the server.
func (s *Server) Close(ctx context.Context) error { return s.srv.Shutdown(ctx) }
