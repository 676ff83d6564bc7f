package kafkatest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/configs"
)

// The real broker's SASL_SSL listener, which `make test` starts beside the
// plaintext one (deploy/kafka/kafka.sh, KAFKA_SASL_SSL_PORT): its address,
// the CA that signed its certificate, and a SCRAM-SHA-512 user.
const (
	EnvSASLSSLBrokers = "KAFKA_TEST_SASL_SSL_BROKERS"
	EnvCAFile         = "KAFKA_TEST_CA_FILE"
	EnvSASLUsername   = "KAFKA_TEST_SASL_USERNAME"
	EnvSASLPassword   = "KAFKA_TEST_SASL_PASSWORD"
)

// SecureConfig returns Config for the real broker's SASL_SSL listener: TLS
// trusting the test CA, SCRAM-SHA-512 as the test user, the password read
// from KAFKA_TEST_SASL_PASSWORD (kafka.sasl.password_env). It skips the
// test when the listener is not configured. The same broker's plaintext
// listener is Real.
func SecureConfig(t testing.TB) configs.Config {
	t.Helper()
	brokers, ca, user := os.Getenv(EnvSASLSSLBrokers), os.Getenv(EnvCAFile), os.Getenv(EnvSASLUsername)
	if brokers == "" || ca == "" || user == "" || os.Getenv(EnvSASLPassword) == "" || testing.Short() {
		t.Skipf("no SASL_SSL broker: set %s, %s, %s and %s (make test does)", EnvSASLSSLBrokers, EnvCAFile, EnvSASLUsername, EnvSASLPassword)
	}
	c := Config(t, Target{Name: "kafka-sasl-ssl", Brokers: strings.Split(brokers, ",")})
	c.Kafka.TLS = configs.KafkaTLS{Enable: true, CAFile: ca}
	c.Kafka.SASL = configs.KafkaSASL{Mechanism: "scram-sha-512", Username: user, PasswordEnv: EnvSASLPassword}
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	return c
}

// UntrustedCA writes a CA certificate that signed nothing the broker
// holds, and returns its file.
func UntrustedCA(t testing.TB) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "untrusted test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "untrusted-ca.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}
