package configs

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Kafka is the consumer-group client configuration.
type Kafka struct {
	Brokers           []string      `mapstructure:"brokers"`
	Group             string        `mapstructure:"group"`
	ClientID          string        `mapstructure:"client_id"`
	SessionTimeout    time.Duration `mapstructure:"session_timeout"`
	HeartbeatInterval time.Duration `mapstructure:"heartbeat_interval"`
	RebalanceTimeout  time.Duration `mapstructure:"rebalance_timeout"`
	JoinGroupBackoff  time.Duration `mapstructure:"join_group_backoff"`
	FetchMaxWait      time.Duration `mapstructure:"fetch_max_wait"`
	FetchMaxBytes     int           `mapstructure:"fetch_max_bytes"`
	StartOffset       string        `mapstructure:"start_offset"`
	RequestTimeout    time.Duration `mapstructure:"request_timeout"`
	TLS               KafkaTLS      `mapstructure:"tls"`
	SASL              KafkaSASL     `mapstructure:"sasl"`
}

// KafkaTLS is the TLS every Kafka client of adaptrec connects with.
type KafkaTLS struct {
	// Enable turns TLS on (default off: plaintext).
	Enable bool `mapstructure:"enable"`
	// CAFile is a PEM file of the CAs that sign the brokers' certificates
	// (default "": the system's roots).
	CAFile string `mapstructure:"ca_file"`
	// CertFile and KeyFile are the PEM client certificate and key for
	// brokers that authenticate clients by certificate (mTLS); both or neither.
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
	// ServerName is checked against the brokers' certificates (default "":
	// the host of the address dialled).
	ServerName string `mapstructure:"server_name"`
	// InsecureSkipVerify accepts any broker certificate (default false).
	InsecureSkipVerify bool `mapstructure:"insecure_skip_verify"`
}

// KafkaSASL is the SASL authentication of every Kafka client. The password
// is never a config value: it is read from the environment variable named
// by PasswordEnv or from PasswordFile when the clients are built.
type KafkaSASL struct {
	// Mechanism is one of SASLMechanisms (default "": no SASL).
	Mechanism string `mapstructure:"mechanism"`
	Username  string `mapstructure:"username"`
	// PasswordEnv names the environment variable holding the password.
	PasswordEnv string `mapstructure:"password_env"`
	// PasswordFile is a file holding the password (a trailing newline is
	// ignored).
	PasswordFile string `mapstructure:"password_file"`
}

// SASLMechanisms lists the values kafka.sasl.mechanism accepts besides "".
var SASLMechanisms = []string{"plain", "scram-sha-256", "scram-sha-512"}

// check validates kafka.*.
func (k Kafka) check(p *problems) {
	if len(k.Brokers) == 0 {
		p.add("kafka.brokers", "at least one broker is required")
	}
	for _, b := range k.Brokers {
		host, port, err := net.SplitHostPort(b)
		if err != nil || host == "" {
			p.add("kafka.brokers", "%q is not HOST:PORT", b)
			continue
		}
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			p.add("kafka.brokers", "%q has an invalid port", b)
		}
	}
	nonEmpty(p, map[string]string{"kafka.group": k.Group, "kafka.client_id": k.ClientID})
	positive(p, map[string]time.Duration{
		"kafka.session_timeout": k.SessionTimeout, "kafka.heartbeat_interval": k.HeartbeatInterval,
		"kafka.rebalance_timeout": k.RebalanceTimeout, "kafka.join_group_backoff": k.JoinGroupBackoff,
		"kafka.fetch_max_wait": k.FetchMaxWait, "kafka.request_timeout": k.RequestTimeout,
	})
	*p = append(*p, k.TLS.check()...)
	*p = append(*p, k.SASL.check()...)
	if k.HeartbeatInterval >= k.SessionTimeout && k.SessionTimeout > 0 {
		p.add("kafka.heartbeat_interval", "must be shorter than kafka.session_timeout (%v)", k.SessionTimeout)
	}
	positive(p, map[string]int{"kafka.fetch_max_bytes": k.FetchMaxBytes})
	switch k.StartOffset {
	case "earliest", "latest":
	default:
		p.add("kafka.start_offset", "must be earliest or latest, got %q", k.StartOffset)
	}
}

// check validates kafka.tls.*; files must be readable now, not at the
// first connection.
func (t KafkaTLS) check() []error {
	var errs []error
	if !t.Enable && (t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify) {
		errs = append(errs, errors.New("kafka.tls.enable: must be true when kafka.tls.ca_file, cert_file, key_file, server_name or insecure_skip_verify is set"))
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs = append(errs, errors.New("kafka.tls.key_file: kafka.tls.cert_file and kafka.tls.key_file go together (mTLS): set both or neither"))
	}
	for _, f := range []struct{ key, path string }{{"kafka.tls.ca_file", t.CAFile}, {"kafka.tls.cert_file", t.CertFile}, {"kafka.tls.key_file", t.KeyFile}} {
		if err := readable(f.path); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.key, err))
		}
	}
	return errs
}

// check validates kafka.sasl.* without reading the password itself.
func (s KafkaSASL) check() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if s.Mechanism == "" {
		if s.Username != "" || s.PasswordEnv != "" || s.PasswordFile != "" {
			bad("kafka.sasl.mechanism", "must be set (%s) when kafka.sasl.username, password_env or password_file is", strings.Join(SASLMechanisms, ", "))
		}
		return errs
	}
	if !slices.Contains(SASLMechanisms, s.Mechanism) {
		bad("kafka.sasl.mechanism", "must be one of %s (or empty: no SASL), got %q", strings.Join(SASLMechanisms, ", "), s.Mechanism)
	}
	if strings.TrimSpace(s.Username) == "" {
		bad("kafka.sasl.username", "is required with kafka.sasl.mechanism %q", s.Mechanism)
	}
	switch {
	case s.PasswordEnv == "" && s.PasswordFile == "":
		bad("kafka.sasl.password_env", "set it to the name of the environment variable holding the password, or set kafka.sasl.password_file")
	case s.PasswordEnv != "" && s.PasswordFile != "":
		bad("kafka.sasl.password_file", "set only one of kafka.sasl.password_env and kafka.sasl.password_file")
	case s.PasswordEnv != "" && !envName(s.PasswordEnv):
		// Not echoed: it may be the password itself, put in the wrong key.
		bad("kafka.sasl.password_env", "must be the name of an environment variable (letters, digits, '_'), not the password")
	}
	if err := readable(s.PasswordFile); err != nil {
		bad("kafka.sasl.password_file", "%v", err)
	}
	return errs
}

// readable reports why path cannot be opened for reading ("": nothing to check).
func readable(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return f.Close()
}

func envName(s string) bool {
	for i, r := range s {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}
