package kafkaconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/segmentio/kafka-go"
)

// AuthError reports that a broker rejected the SASL credentials.
type AuthError struct {
	User, Mechanism, Addr string
	Err                   error
}

// Error names the user, mechanism and broker, never the password.
func (e *AuthError) Error() string {
	return fmt.Sprintf("SASL authentication failed for user %q (mechanism %s) at kafka broker %s: check kafka.sasl.username and the password", e.User, e.Mechanism, e.Addr)
}

// Unwrap returns kafka-go's error (kafka.SASLAuthenticationFailed).
func (e *AuthError) Unwrap() error { return e.Err }

// TLSError reports a TLS handshake that failed, with the reason in words
// (an untrusted CA, a name mismatch, a listener that does not speak TLS).
type TLSError struct {
	Addr, Reason string
	Err          error
}

// Error is "TLS handshake with ADDR: REASON".
func (e *TLSError) Error() string { return fmt.Sprintf("TLS handshake with %s: %s", e.Addr, e.Reason) }

// Unwrap returns the crypto/tls or crypto/x509 error.
func (e *TLSError) Unwrap() error { return e.Err }

// ClosedError reports a broker that closed the connection on a request, as
// a broker does when the listener wants TLS or SASL the client did not use.
type ClosedError struct {
	Addr, Hint string
	Err        error
}

// Error names the broker and ends with the hint.
func (e *ClosedError) Error() string {
	return fmt.Sprintf("kafka broker %s closed the connection (%v): %s", e.Addr, e.Err, e.Hint)
}

// Unwrap returns the read error (io.EOF, a reset).
func (e *ClosedError) Unwrap() error { return e.Err }

// Check connects to the seed brokers as the clients will (TCP, TLS
// handshake, SASL exchange, then a metadata request) and returns nil as
// soon as one answers, or why none did. A rejected password is returned
// at once as an *AuthError; a failed handshake is a *TLSError; a broker
// that hangs up is a *ClosedError with a hint at what it may want. Each
// broker gets the request timeout.
func (c *Conn) Check(ctx context.Context) error {
	var errs []error
	for _, addr := range c.brokers {
		err := c.checkBroker(ctx, addr)
		if err == nil {
			return nil
		}
		var auth *AuthError
		if errors.As(err, &auth) || ctx.Err() != nil {
			return err
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c *Conn) checkBroker(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var nc net.Conn
	nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("connecting to kafka broker %s: %w", addr, err)
	}
	defer func() { _ = nc.Close() }()
	if c.tls != nil {
		tc := tls.Client(nc, c.tlsFor(addr))
		if err := tc.HandshakeContext(ctx); err != nil {
			return tlsError(addr, err)
		}
		nc = tc
	}
	// kafka-go does the SASL exchange over the connection handed to it.
	d := &kafka.Dialer{ClientID: c.clientID, SASLMechanism: c.mech,
		DialFunc: func(context.Context, string, string) (net.Conn, error) { return nc, nil }}
	kc, err := d.DialContext(ctx, "tcp", addr)
	if err == nil {
		if dl, ok := ctx.Deadline(); ok {
			_ = kc.SetDeadline(dl)
		}
		// A broker answers ApiVersions before authentication and hangs up
		// on the first real request: ask for metadata.
		_, err = kc.Brokers()
	}
	if err != nil {
		return c.explain(addr, err)
	}
	return nil
}

// tlsFor is c's TLS config with the server name defaulting to addr's host,
// as kafka-go's dialer and transport do.
func (c *Conn) tlsFor(addr string) *tls.Config {
	if c.tls.ServerName != "" {
		return c.tls
	}
	tc := c.tls.Clone()
	tc.ServerName, _, _ = net.SplitHostPort(addr)
	return tc
}

// explain turns an error of the SASL exchange or the first request into
// one that says what failed.
func (c *Conn) explain(addr string, err error) error {
	var op *net.OpError
	switch {
	case errors.Is(err, kafka.SASLAuthenticationFailed):
		return &AuthError{User: c.user, Mechanism: c.mech.Name(), Addr: addr, Err: err}
	case c.mech != nil && errors.Is(err, kafka.UnsupportedSASLMechanism):
		return fmt.Errorf("kafka broker %s does not accept SASL mechanism %s (kafka.sasl.mechanism): %w", addr, c.mech.Name(), err)
	case c.mech != nil && errors.Is(err, kafka.IllegalSASLState):
		return fmt.Errorf("kafka broker %s refused the SASL handshake (is it a SASL listener?): %w", addr, err)
	case c.tls != nil && errors.As(err, &op) && op.Op == "remote error":
		// TLS 1.3 reports a rejected client certificate on the first read.
		return &TLSError{Addr: addr, Reason: "the broker rejected the connection: " + op.Err.Error() + " (kafka.tls.cert_file and key_file are the client certificate)", Err: err}
	case closed(err):
		return &ClosedError{Addr: addr, Hint: c.hint(), Err: err}
	}
	return fmt.Errorf("kafka broker %s: %w", addr, err)
}

// hint says what a broker that hangs up may want that c does not use.
func (c *Conn) hint() string {
	switch {
	case c.tls == nil && c.mech == nil:
		return "the listener may want TLS (kafka.tls.enable) or SASL (kafka.sasl.mechanism)"
	case c.tls == nil:
		return "the listener may want TLS (kafka.tls.enable)"
	case c.mech == nil:
		return "the listener may want SASL (kafka.sasl.mechanism)"
	}
	return "check that the listener's security protocol is SASL_SSL with this mechanism"
}

func closed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func tlsError(addr string, err error) error {
	var (
		unknown  x509.UnknownAuthorityError
		host     x509.HostnameError
		invalid  x509.CertificateInvalidError
		notTLS   tls.RecordHeaderError
		reason   string
		x509Text = func(e error) string { return trimX509(e.Error()) }
	)
	switch {
	case errors.As(err, &unknown):
		reason = "certificate signed by unknown authority (kafka.tls.ca_file names the CA to trust)"
	case errors.As(err, &host):
		reason = x509Text(host) + " (kafka.tls.server_name sets the name to check)"
	case errors.As(err, &invalid):
		reason = x509Text(invalid)
	case errors.As(err, &notTLS):
		reason = "the broker did not answer with TLS: is this a TLS listener?"
	case closed(err):
		reason = "the broker closed the connection: is this a TLS listener?"
	default:
		reason = err.Error()
	}
	return &TLSError{Addr: addr, Reason: reason, Err: err}
}

func trimX509(s string) string {
	const p = "x509: "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}
