package kafkatest

import (
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Logger returns a logger writing warnings and errors to the test log; it
// goes quiet once the test ends, since client goroutines may outlive it.
func Logger(t testing.TB) *slog.Logger {
	w := &tWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: testLogLevel()}))
}

// testLogLevel is warn, or what ADAPTREC_TEST_LOG says (debug, info) when
// a test's worker logs are needed.
func testLogLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("ADAPTREC_TEST_LOG"))); err != nil {
		return slog.LevelWarn
	}
	return l
}

type tWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

// Write logs p through the test, or drops it once the test has ended.
func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(p))
	}
	return len(p), nil
}

// LoggerTo returns a text logger at warn level writing to w (not safe for
// concurrent writers unless w is).
func LoggerTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
