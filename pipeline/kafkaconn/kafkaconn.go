// Package kafkaconn owns how adaptrec's Kafka clients reach the cluster:
// the seed brokers, client id, request timeout, TLS and SASL, described
// once by a Conn built from the kafka.* keys. Every client (admin client,
// group and partition readers, writers) is made from a Conn, so a security
// setting applies to all of them at once.
//
// Check dials the seed brokers the way the clients will and turns a TLS or
// SASL failure, or a broker that hangs up on a client without them, into an
// error that says what failed; commands call it before anything else.
package kafkaconn

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/adaptrec/adaptrec/configs"
)

// Conn describes the connection every Kafka client of a process makes. It
// is immutable and safe for concurrent use. The SASL password lives only
// inside the mechanism: Conn's String and log value never show it.
type Conn struct {
	brokers  []string
	clientID string
	timeout  time.Duration
	tls      *tls.Config    // nil: plaintext
	mech     sasl.Mechanism // nil: no SASL
	user     string         // SASL user, for messages
	admin    *kafka.Transport
}

// Plain returns a Conn to brokers without TLS or SASL, with client id
// "adaptrec" and a 10 s request timeout: the in-process broker and tests.
func Plain(brokers []string) *Conn {
	return newConn(brokers, "adaptrec", 10*time.Second, nil, nil, "")
}

func newConn(brokers []string, clientID string, timeout time.Duration, tc *tls.Config, mech sasl.Mechanism, user string) *Conn {
	c := &Conn{brokers: brokers, clientID: clientID, timeout: timeout, tls: tc, mech: mech, user: user}
	c.admin = c.Transport()
	return c
}

// FromConfig builds the Conn of the kafka.* keys: it loads the CA and
// client certificate files and reads the SASL password from the
// environment variable or file the config names. Errors name the key.
func FromConfig(k configs.Kafka) (*Conn, error) {
	tc, err := tlsConfig(k.TLS)
	if err != nil {
		return nil, err
	}
	mech, err := mechanism(k.SASL)
	if err != nil {
		return nil, err
	}
	return newConn(k.Brokers, k.ClientID, k.RequestTimeout, tc, mech, k.SASL.Username), nil
}

func tlsConfig(t configs.KafkaTLS) (*tls.Config, error) {
	if !t.Enable {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.ca_file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka.tls.ca_file: %s holds no PEM certificate", t.CAFile)
		}
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.cert_file: loading the client certificate %s with key %s: %w", t.CertFile, t.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func mechanism(s configs.KafkaSASL) (sasl.Mechanism, error) {
	if s.Mechanism == "" {
		return nil, nil
	}
	pw, err := password(s)
	if err != nil {
		return nil, err
	}
	switch s.Mechanism {
	case "plain":
		return plain.Mechanism{Username: s.Username, Password: pw}, nil
	case "scram-sha-256", "scram-sha-512":
		algo := scram.SHA512
		if s.Mechanism == "scram-sha-256" {
			algo = scram.SHA256
		}
		m, err := scram.Mechanism(algo, s.Username, pw)
		if err != nil {
			return nil, fmt.Errorf("kafka.sasl.username: %w", err)
		}
		return m, nil
	}
	return nil, fmt.Errorf("kafka.sasl.mechanism: unknown mechanism %q", s.Mechanism)
}

// password reads the SASL password from where the config says it is.
func password(s configs.KafkaSASL) (string, error) {
	if s.PasswordFile != "" {
		b, err := os.ReadFile(s.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("kafka.sasl.password_file: %w", err)
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return "", fmt.Errorf("kafka.sasl.password_file: %s is empty", s.PasswordFile)
		}
		return pw, nil
	}
	if s.PasswordEnv == "" {
		return "", fmt.Errorf("kafka.sasl.password_env: set kafka.sasl.password_env or kafka.sasl.password_file")
	}
	pw, ok := os.LookupEnv(s.PasswordEnv)
	switch {
	case !ok:
		return "", fmt.Errorf("kafka.sasl.password_env: environment variable %s is not set", s.PasswordEnv)
	case pw == "":
		return "", fmt.Errorf("kafka.sasl.password_env: environment variable %s is empty", s.PasswordEnv)
	}
	return pw, nil
}

// Brokers returns the seed brokers.
func (c *Conn) Brokers() []string { return c.brokers }

// WithClientID returns a copy of c whose clients send id.
func (c *Conn) WithClientID(id string) *Conn {
	return newConn(c.brokers, id, c.timeout, c.tls, c.mech, c.user)
}

// Client returns an admin client. Clients of one Conn share a connection
// pool.
func (c *Conn) Client() *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(c.brokers...), Timeout: c.timeout, Transport: c.admin}
}

// Refresh drops the admin clients' connections and cached cluster
// metadata, so that their next request reads the metadata again: after a
// broker failure, it names the partitions' new leaders at once instead of
// after the transport's metadata TTL.
func (c *Conn) Refresh() { c.admin.CloseIdleConnections() }

// Dialer returns a dialer for readers and partition connections.
func (c *Conn) Dialer() *kafka.Dialer {
	return &kafka.Dialer{ClientID: c.clientID, Timeout: c.timeout, DualStack: true, TLS: c.tls, SASLMechanism: c.mech}
}

// Transport returns a new transport for one writer (a writer's Close
// closes its transport's connections). It dials with the transport's
// default 5 s timeout, TLS handshake and SASL exchange included.
func (c *Conn) Transport() *kafka.Transport {
	return &kafka.Transport{ClientID: c.clientID, TLS: c.tls, SASL: c.mech}
}

// String describes the connection for logs: brokers, TLS, SASL mechanism
// and user, never the password.
func (c *Conn) String() string {
	var b strings.Builder
	b.WriteString(strings.Join(c.brokers, ","))
	if c.tls != nil {
		b.WriteString(" tls")
	}
	if c.mech != nil {
		fmt.Fprintf(&b, " sasl=%s user=%q", c.mech.Name(), c.user)
	}
	return b.String()
}

// LogValue logs a Conn as its String.
func (c *Conn) LogValue() slog.Value { return slog.StringValue(c.String()) }
