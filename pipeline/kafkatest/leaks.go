package kafkatest

import (
	"fmt"
	"net/http"
	"os"
	"sync"
	"testing"

	"github.com/adaptrec/adaptrec/pipeline/kafkaconn"
	"github.com/segmentio/kafka-go"
	"go.uber.org/goleak"
)

// conns are the connections the helpers made; Main closes them.
var conns struct {
	sync.Mutex
	all []*kafkaconn.Conn
}

// plain returns a plaintext Conn to brokers that Main closes.
func plain(brokers []string) *kafkaconn.Conn {
	c := kafkaconn.Plain(brokers)
	conns.Lock()
	defer conns.Unlock()
	conns.all = append(conns.all, c)
	return c
}

// Main runs a package's tests and then fails them if a goroutine outlived
// them (goleak). kafka-go's clients that have no transport of their own
// share kafka.DefaultTransport, whose connection pool lives as long as
// the process, and the helpers' admin clients keep theirs open: both are
// closed first, so that every kafka-go goroutine still running is a leak.
func Main(m *testing.M, opts ...goleak.Option) {
	code := m.Run()
	if t, ok := kafka.DefaultTransport.(*kafka.Transport); ok {
		t.CloseIdleConnections()
	}
	http.DefaultClient.CloseIdleConnections() // the tests' queries to Jaeger
	conns.Lock()
	for _, c := range conns.all {
		c.Refresh()
	}
	conns.Unlock()
	if code == 0 {
		if err := goleak.Find(opts...); err != nil {
			fmt.Fprintln(os.Stderr, "goleak: goroutines outlived the tests:", err)
			code = 1
		}
	}
	os.Exit(code)
}
