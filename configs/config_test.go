package configs

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

func TestDefaultFileDocumentsEveryKey(t *testing.T) {
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(strings.NewReader(string(DefaultYAML))); err != nil {
		t.Fatal(err)
	}
	fileKeys := v.AllKeys()
	if got, want := slices.Sorted(slices.Values(fileKeys)), keys(); !reflect.DeepEqual(got, want) {
		t.Fatalf("adaptrec.yaml keys differ from Config fields:\nfile:   %v\nstruct: %v", got, want)
	}
	c := Default()
	if c.Batch.Size != 256 || c.Batch.MaxWait != 50*time.Millisecond || c.Topics.Partitions != 6 {
		t.Fatalf("defaults not decoded from the embedded file: %+v", c)
	}
}

func TestBadFixtures(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"unknown-key.bad.yaml", `unknown key "batch.sise"`},
		{"unknown-section.bad.yaml", `unknown key "kafkaa.brokers"`},
		{"scalar-section.bad.yaml", `key "batch" must be a mapping`},
		{"batch-size-type.bad.yaml", `batch.size`},
		{"batch-size-zero.bad.yaml", `batch.size: must be positive, got 0`},
		{"max-wait-duration.bad.yaml", `batch.max_wait`},
		{"broker-no-port.bad.yaml", `kafka.brokers: "localhost" is not HOST:PORT`},
		{"start-offset.bad.yaml", `kafka.start_offset: must be earliest or latest, got "middle"`},
		{"heartbeat.bad.yaml", `kafka.heartbeat_interval: must be shorter than kafka.session_timeout`},
		{"topic-name.bad.yaml", `topics.dlq: "dead letters" is not a valid Kafka topic name`},
		{"same-topic.bad.yaml", `topics.feedback: must differ from the output topics`},
		{"rating-range.bad.yaml", `validate.rating_min: must be below validate.rating_max`},
		{"max-id-length.bad.yaml", `unknown key "validate.max_id_length"`},
		{"max-future.bad.yaml", `validate.max_future: must not be negative, got -1h0m0s`},
		{"min-time.bad.yaml", `validate.min_time: "2020-01-01" is not an RFC 3339 time`},
		{"dedupe-window.bad.yaml", `dedupe.window: must be within 0..10000000, got -1`},
		{"log-format.bad.yaml", `log.format: must be text or json, got "xml"`},
		{"malformed-fraction.bad.yaml", `embedded.malformed_fraction: must be within [0, 1], got 2`},
		{"tracing-protocol.bad.yaml", `tracing.protocol: must be grpc or http/protobuf, got "thrift"`},
		{"tracing-endpoint.bad.yaml", `tracing.endpoint: "127.0.0.1:4317" is not an http:// or https:// URL`},
		{"sample-ratio.bad.yaml", `tracing.sample_ratio: must be within [0, 1], got 1.5`},
		{"metrics-addr.bad.yaml", `metrics.addr: "localhost" is not HOST:PORT`},
		{"snapshot-chunk-bytes.bad.yaml", `snapshot.chunk_bytes: must be within 1024..921600, got 1048576`},
		{"snapshot-peer-timeout.bad.yaml", `snapshot.peer_timeout: must be a positive duration, got 0s`},
		{"snapshot-restore-timeout.bad.yaml", `snapshot.restore_timeout: must be a positive duration, got 0s`},
		{"snapshot-replica.bad.yaml", `snapshot.replica: must not contain '/' or spaces, got "pod/7"`},
		{"snapshot-order-topic.bad.yaml", `snapshot.order_topic: "the order" is not a valid Kafka topic name of its own`},
		{"session-rebuild.bad.yaml", `session.rebuild_events: must not be negative, got -1`},
		{"snapshot-idle.bad.yaml", `snapshot.idle: must not be negative, got -1s`},
		{"stall-timeout.bad.yaml", `worker.stall_timeout: must be a positive duration, got 0s`},
		{"stall-interval.bad.yaml", `worker.stall_timeout: must be longer than worker.health_interval (1m0s), got 30s`},
		{"yaml-syntax.bad.yaml", `yaml-syntax.bad.yaml`},
		{"sasl-mechanism.bad.yaml", `kafka.sasl.mechanism: must be one of plain, scram-sha-256, scram-sha-512 (or empty: no SASL), got "gssapi"`},
		{"sasl-username.bad.yaml", `kafka.sasl.username: is required with kafka.sasl.mechanism "scram-sha-512"`},
		{"sasl-no-password.bad.yaml", `kafka.sasl.password_env: set it to the name of the environment variable holding the password, or set kafka.sasl.password_file`},
		{"sasl-password-env.bad.yaml", `kafka.sasl.password_env: must be the name of an environment variable`},
		{"sasl-password-file.bad.yaml", `kafka.sasl.password_file: open /nonexistent/adaptrec/kafka-password: no such file or directory`},
		{"sasl-password-key.bad.yaml", `unknown key "kafka.sasl.password" (see configs/adaptrec.yaml): the password is read from the environment variable named by kafka.sasl.password_env or from kafka.sasl.password_file`},
		{"tls-ca-file.bad.yaml", `kafka.tls.ca_file: open /nonexistent/adaptrec/ca.pem: no such file or directory`},
		{"tls-cert-without-key.bad.yaml", `kafka.tls.key_file: kafka.tls.cert_file and kafka.tls.key_file go together (mTLS): set both or neither`},
		{"tls-not-enabled.bad.yaml", `kafka.tls.enable: must be true when kafka.tls.ca_file, cert_file, key_file, server_name or insecure_skip_verify is set`},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			_, err := Load(LoadOptions{File: filepath.Join("..", "testdata", "config", tt.file)})
			if err == nil {
				t.Fatalf("Load accepted a bad config")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
	all, _ := filepath.Glob(filepath.Join("..", "testdata", "config", "*.bad.yaml"))
	for _, f := range all {
		if !seen[filepath.Base(f)] {
			t.Errorf("fixture %s has no expected error in the table", f)
		}
	}
}

func TestPrecedenceFileEnvFlags(t *testing.T) {
	file := filepath.Join("..", "testdata", "config", "good.yaml")
	c, err := Load(LoadOptions{File: file})
	if err != nil {
		t.Fatal(err)
	}
	if c.Kafka.Group != "g1" || c.Batch.Size != 64 || len(c.Kafka.Brokers) != 2 || c.Batch.MaxWait != 20*time.Millisecond {
		t.Fatalf("file values not applied: %+v", c)
	}
	if c.Topics.Partitions != 6 {
		t.Fatalf("default lost when a file is given: partitions=%d", c.Topics.Partitions)
	}

	env := []string{"ADAPTREC_KAFKA_GROUP=from-env", "ADAPTREC_BATCH_MAX_WAIT=7ms", "ADAPTREC_KAFKA_BROKERS=h1:1,h2:2,h3:3", "PATH=/bin"}
	c, err = Load(LoadOptions{File: file, Environ: env})
	if err != nil {
		t.Fatal(err)
	}
	if c.Kafka.Group != "from-env" || c.Batch.MaxWait != 7*time.Millisecond || len(c.Kafka.Brokers) != 3 {
		t.Fatalf("env does not override file: %+v", c.Kafka)
	}

	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.String("group", "", "")
	fs.StringSlice("brokers", nil, "")
	if err := fs.Parse([]string{"--group", "from-flag", "--brokers", "x:9,y:10"}); err != nil {
		t.Fatal(err)
	}
	flags := map[string]*pflag.Flag{"kafka.group": fs.Lookup("group"), "kafka.brokers": fs.Lookup("brokers")}
	c, err = Load(LoadOptions{File: file, Environ: env, Flags: flags})
	if err != nil {
		t.Fatal(err)
	}
	if c.Kafka.Group != "from-flag" || !reflect.DeepEqual(c.Kafka.Brokers, []string{"x:9", "y:10"}) {
		t.Fatalf("flags do not override env: %+v", c.Kafka)
	}

	// A flag that was not set leaves the lower layers alone.
	fs2 := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs2.String("group", "", "")
	c, err = Load(LoadOptions{Environ: env, Flags: map[string]*pflag.Flag{"kafka.group": fs2.Lookup("group")}})
	if err != nil || c.Kafka.Group != "from-env" {
		t.Fatalf("unset flag overrode env: %v %+v", err, c.Kafka)
	}
}

func TestBadEnvironment(t *testing.T) {
	tests := []struct {
		env  string
		want string
	}{
		{"ADAPTREC_BATCH_SIZ=3", "ADAPTREC_BATCH_SIZ: unknown key"},
		{"ADAPTREC_BATCH_SIZE=-4", "batch.size: must be positive, got -4"},
		{"ADAPTREC_BATCH_MAX_WAIT=fast", "batch.max_wait"},
		{"ADAPTREC_TOPICS_CREATE=maybe", "topics.create"},
		{"ADAPTREC_SNAPSHOT_CHUNK_BYTES=512", "snapshot.chunk_bytes: must be within 1024..921600, got 512"},
		{"ADAPTREC_KAFKA_SASL_PASSWORD=hunter2", "ADAPTREC_KAFKA_SASL_PASSWORD: unknown key (see configs/adaptrec.yaml): the password is read from the environment variable named by kafka.sasl.password_env"},
	}
	for _, tt := range tests {
		_, err := Load(LoadOptions{Environ: []string{tt.env}})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want error containing %q", tt.env, err, tt.want)
		}
	}
}

// A list key set by an environment variable is split on commas into
// elements of its own type, not only strings.
func TestEnvironmentLists(t *testing.T) {
	c, err := Load(LoadOptions{Environ: []string{
		"ADAPTREC_RECOMMENDER_DQN_HIDDEN=16, 32",
		"ADAPTREC_KAFKA_BROKERS=a:1,b:2",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if h := c.Recommender.DQN.Hidden; len(h) != 2 || h[0] != 16 || h[1] != 32 {
		t.Errorf("recommender.dqn.hidden %v, want [16 32]", h)
	}
	if b := c.Kafka.Brokers; len(b) != 2 || b[0] != "a:1" || b[1] != "b:2" {
		t.Errorf("kafka.brokers %q, want [a:1 b:2]", b)
	}
	if _, err := Load(LoadOptions{Environ: []string{"ADAPTREC_RECOMMENDER_DQN_HIDDEN=16,x"}}); err == nil || !strings.Contains(err.Error(), "recommender.dqn.hidden[1]") {
		t.Errorf("a bad element: %v", err)
	}
}

// A secret must not reach an error message, where it would be logged.
func TestPasswordNotEchoed(t *testing.T) {
	for _, fixture := range []string{"sasl-password-env.bad.yaml", "sasl-password-key.bad.yaml"} {
		_, err := Load(LoadOptions{File: filepath.Join("..", "testdata", "config", fixture)})
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: error %v echoes the password", fixture, err)
		}
	}
	_, err := Load(LoadOptions{Environ: []string{"ADAPTREC_KAFKA_SASL_PASSWORD=hunter2"}})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("environment: error %v echoes the password", err)
	}
}

func TestSecurityConfig(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(LoadOptions{Environ: []string{
		"ADAPTREC_KAFKA_SASL_MECHANISM=scram-sha-512", "ADAPTREC_KAFKA_SASL_USERNAME=svc",
		"ADAPTREC_KAFKA_SASL_PASSWORD_FILE=" + pw, "ADAPTREC_KAFKA_TLS_ENABLE=true",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Kafka.TLS.Enable || c.Kafka.SASL.Mechanism != "scram-sha-512" || c.Kafka.SASL.PasswordFile != pw {
		t.Fatalf("security keys not applied: %+v %+v", c.Kafka.TLS, c.Kafka.SASL)
	}
	// The variable holding the password may carry the ADAPTREC_ prefix.
	_, err = Load(LoadOptions{Environ: []string{"ADAPTREC_KAFKA_SASL_MECHANISM=plain", "ADAPTREC_KAFKA_SASL_USERNAME=svc",
		"ADAPTREC_KAFKA_PASSWORD=s3cret", "ADAPTREC_KAFKA_SASL_PASSWORD_ENV=ADAPTREC_KAFKA_PASSWORD"}})
	if err != nil {
		t.Fatalf("ADAPTREC_KAFKA_PASSWORD named by kafka.sasl.password_env: %v", err)
	}
	out, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "s3cret") {
		t.Fatalf("marshalled config holds the password:\n%s", out)
	}
	// An unreadable password file is refused at load.
	if err := os.Chmod(pw, 0); err != nil {
		t.Fatal(err)
	}
	if f, err := os.Open(pw); err == nil { // root reads anything
		f.Close()
		t.Skip("running as root: file permissions are not enforced")
	}
	_, err = Load(LoadOptions{Environ: []string{"ADAPTREC_KAFKA_SASL_MECHANISM=plain", "ADAPTREC_KAFKA_SASL_USERNAME=svc", "ADAPTREC_KAFKA_SASL_PASSWORD_FILE=" + pw}})
	if err == nil || !strings.Contains(err.Error(), "kafka.sasl.password_file: open "+pw+": permission denied") {
		t.Fatalf("unreadable password file: got %v", err)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	c, err := Load(LoadOptions{Environ: []string{"ADAPTREC_BATCH_MAX_WAIT=7ms", "ADAPTREC_KAFKA_GROUP=zz"}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(f, out, 0o644); err != nil {
		t.Fatal(err)
	}
	back, err := Load(LoadOptions{File: f})
	if err != nil {
		t.Fatalf("marshalled config does not load: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(back, c) {
		t.Fatalf("round trip changed the config:\n%+v\n%+v", back, c)
	}
}

// keys returns every configuration key in dotted form, sorted.
func keys() []string {
	var keys []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			k := prefix + f.Tag.Get("mapstructure")
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Time]() {
				walk(f.Type, k+".")
				continue
			}
			keys = append(keys, k)
		}
	}
	walk(reflect.TypeFor[Config](), "")
	slices.Sort(keys)
	return keys
}
