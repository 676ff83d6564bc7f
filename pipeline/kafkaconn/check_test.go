package kafkaconn_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/pipeline/embedded"
	"github.com/adaptrec/adaptrec/pipeline/kafkaconn"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
)

func check(t *testing.T, k configs.Kafka) error {
	t.Helper()
	conn, err := kafkaconn.FromConfig(k)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return conn.Check(ctx)
}

func TestCheckPlaintext(t *testing.T) {
	b, err := embedded.Start(1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := kafkaconn.Plain(b.Addrs()).Check(context.Background()); err != nil {
		t.Fatalf("plaintext broker: %v", err)
	}
	// A seed that is down does not hide one that answers.
	if err := kafkaconn.Plain(append([]string{"127.0.0.1:1"}, b.Addrs()...)).Check(context.Background()); err != nil {
		t.Fatalf("one broker down: %v", err)
	}
	err = kafkaconn.Plain([]string{"127.0.0.1:1"}).Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "connecting to kafka broker 127.0.0.1:1") {
		t.Fatalf("no broker: got %v", err)
	}
}

// The SASL_SSL listener accepts the right TLS and credentials, and every
// way of getting them wrong fails with an error saying what failed.
func TestCheckSASLSSL(t *testing.T) {
	good := kafkatest.SecureConfig(t).Kafka
	addr := good.Brokers[0]
	if err := check(t, good); err != nil {
		t.Fatalf("SASL_SSL with the right credentials: %v", err)
	}

	wrong := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(wrong, []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k := good
	k.SASL.PasswordEnv, k.SASL.PasswordFile = "", wrong
	err := check(t, k)
	t.Logf("wrong password: %v", err)
	var auth *kafkaconn.AuthError
	want := `SASL authentication failed for user "` + good.SASL.Username + `" (mechanism SCRAM-SHA-512) at kafka broker ` + addr
	if !errors.As(err, &auth) || !strings.Contains(err.Error(), want) {
		t.Errorf("wrong password: got %v, want an AuthError %q", err, want)
	}
	if err != nil && strings.Contains(err.Error(), "not-the-password") {
		t.Errorf("the error shows the password: %v", err)
	}

	k = good
	k.TLS.CAFile = kafkatest.UntrustedCA(t)
	err = check(t, k)
	t.Logf("untrusted CA: %v", err)
	var tlsErr *kafkaconn.TLSError
	if want := "TLS handshake with " + addr + ": certificate signed by unknown authority"; !errors.As(err, &tlsErr) || !strings.Contains(err.Error(), want) {
		t.Errorf("untrusted CA: got %v, want a TLSError %q", err, want)
	}

	k = good
	k.TLS.ServerName = "broker.example.com"
	err = check(t, k)
	t.Logf("another name: %v", err)
	if want := "TLS handshake with " + addr + ": certificate is valid for localhost, not broker.example.com (kafka.tls.server_name sets the name to check)"; !errors.As(err, &tlsErr) || !strings.Contains(err.Error(), want) {
		t.Errorf("certificate for another name: got %v, want a TLSError %q", err, want)
	}

	for _, tt := range []struct {
		name     string
		tls      bool
		sasl     bool
		wantHint string
	}{
		{"plaintext", false, false, "the listener may want TLS (kafka.tls.enable) or SASL (kafka.sasl.mechanism)"},
		{"tls only", true, false, "the listener may want SASL (kafka.sasl.mechanism)"},
		{"sasl only", false, true, "the listener may want TLS (kafka.tls.enable)"},
	} {
		k := good
		if !tt.tls {
			k.TLS = configs.KafkaTLS{}
		}
		if !tt.sasl {
			k.SASL = configs.KafkaSASL{}
		}
		err := check(t, k)
		t.Logf("%s: %v", tt.name, err)
		var closed *kafkaconn.ClosedError
		if want := "kafka broker " + addr + " closed the connection"; !errors.As(err, &closed) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), tt.wantHint) {
			t.Errorf("%s: got %v, want a ClosedError %q ... %q", tt.name, err, want, tt.wantHint)
		}
	}

	// A mechanism the listener does not offer (it offers SCRAM).
	k = good
	k.SASL.Mechanism = "plain"
	err = check(t, k)
	if want := "kafka broker " + addr + " does not accept SASL mechanism PLAIN (kafka.sasl.mechanism)"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("unsupported mechanism: got %v, want %q", err, want)
	}
	// SASL against the same broker's plaintext listener.
	k = good
	k.Brokers, k.TLS = kafkatest.Real(t).Brokers, configs.KafkaTLS{}
	err = check(t, k)
	if want := "kafka broker " + k.Brokers[0] + " refused the SASL handshake (is it a SASL listener?)"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("SASL on a plaintext listener: got %v, want %q", err, want)
	}

	// TLS against the same broker's plaintext listener.
	k = good
	k.Brokers, k.SASL = kafkatest.Real(t).Brokers, configs.KafkaSASL{}
	err = check(t, k)
	t.Logf("TLS on a plaintext listener: %v", err)
	if want := "TLS handshake with " + k.Brokers[0] + ": the broker closed the connection: is this a TLS listener?"; !errors.As(err, &tlsErr) || !strings.Contains(err.Error(), want) {
		t.Errorf("TLS on a plaintext listener: got %v, want %q", err, want)
	}
}
