// Package configs owns adaptrec's configuration: the documented default file
// (adaptrec.yaml, embedded in the binary and the only source of defaults), the
// Config struct it decodes into, and Load, which layers a user file, ADAPTREC_*
// environment variables and command-line flags on top and rejects unknown
// keys and invalid values with an error naming the key.
package configs

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// DefaultYAML is configs/adaptrec.yaml: every key with its default.
//
//go:embed adaptrec.yaml
var DefaultYAML []byte

// EnvPrefix is the prefix of the environment variables Load reads.
const EnvPrefix = "ADAPTREC"

// Config is the whole configuration of the adaptrec binary.
type Config struct {
	Kafka       Kafka       `mapstructure:"kafka"`
	Topics      Topics      `mapstructure:"topics"`
	Batch       Batch       `mapstructure:"batch"`
	Validate    Validation  `mapstructure:"validate"`
	Dedupe      Dedupe      `mapstructure:"dedupe"`
	Session     Session     `mapstructure:"session"`
	Recommender Recommender `mapstructure:"recommender"`
	Sink        Sink        `mapstructure:"sink"`
	Worker      Worker      `mapstructure:"worker"`
	Embedded    Embedded    `mapstructure:"embedded"`
	Log         Log         `mapstructure:"log"`
	Tracing     Tracing     `mapstructure:"tracing"`
	Metrics     Metrics     `mapstructure:"metrics"`
	Sim         Sim         `mapstructure:"sim"`
	Snapshot    Snapshot    `mapstructure:"snapshot"`
}

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

// Topics names the topics the worker reads and writes.
type Topics struct {
	Feedback          string `mapstructure:"feedback"`
	Recommendations   string `mapstructure:"recommendations"`
	DLQ               string `mapstructure:"dlq"`
	Decisions         string `mapstructure:"decisions"`
	Create            bool   `mapstructure:"create"`
	Partitions        int    `mapstructure:"partitions"`
	ReplicationFactor int    `mapstructure:"replication_factor"`
}

// Batch is the flush policy: count or time, whichever first.
type Batch struct {
	Size    int           `mapstructure:"size"`
	MaxWait time.Duration `mapstructure:"max_wait"`
}

// Validation bounds what an accepted event may contain.
type Validation struct {
	MaxEventBytes int     `mapstructure:"max_event_bytes"`
	MaxIDBytes    int     `mapstructure:"max_id_bytes"`
	RatingMin     float64 `mapstructure:"rating_min"`
	RatingMax     float64 `mapstructure:"rating_max"`
	// MaxFuture is how far past its message's broker timestamp an event
	// time may lie (0: no bound).
	MaxFuture time.Duration `mapstructure:"max_future"`
	// MinTime is the earliest event time accepted, RFC 3339 (empty: no
	// bound but the fixed floor 1970-01-01T00:00:00Z).
	MinTime string `mapstructure:"min_time"`
}

// MinTimeValue is MinTime parsed; the zero time if it is empty (Check
// rejects a value that does not parse).
func (v Validation) MinTimeValue() time.Time {
	t, _ := time.Parse(time.RFC3339, v.MinTime)
	return t
}

// Dedupe bounds the memory of event ids the worker has learned, so that a
// re-sent event is not learned twice.
type Dedupe struct {
	// Window is how many of the most recent event keys are remembered
	// (0: no de-duplication).
	Window int `mapstructure:"window"`
}

// Session bounds the per-user session bookkeeping.
type Session struct {
	IdleGap     time.Duration `mapstructure:"idle_gap"`
	TTL         time.Duration `mapstructure:"ttl"`
	MaxSessions int           `mapstructure:"max_sessions"`
	// RebuildEvents bounds, per partition, the events re-read to rebuild
	// the session state of a partition this worker did not learn up to
	// where it starts reading (0: no rebuild).
	RebuildEvents int `mapstructure:"rebuild_events"`
}

// Recommender selects and configures the model the worker serves.
type Recommender struct {
	Model      string        `mapstructure:"model"`
	TopN       int           `mapstructure:"top_n"`
	MaxUsers   int           `mapstructure:"max_users"`
	UserTTL    time.Duration `mapstructure:"user_ttl"`
	Popularity Popularity    `mapstructure:"popularity"`
	ItemKNN    ItemKNN       `mapstructure:"itemknn"`
	DQN        DQN           `mapstructure:"dqn"`
	Adaptive   Adaptive      `mapstructure:"adaptive"`
}

// Adaptive configures the architecture controller of the adaptive DQN.
type Adaptive struct {
	Controller    string  `mapstructure:"controller"`
	EpochSessions int     `mapstructure:"epoch_sessions"`
	Step          int     `mapstructure:"step"`
	Lambda        float64 `mapstructure:"lambda"`
	SampleEvery   int     `mapstructure:"sample_every"`
	MinWidth      int     `mapstructure:"min_width"`
	MaxWidth      int     `mapstructure:"max_width"`
	MinDepth      int     `mapstructure:"min_depth"`
	MaxDepth      int     `mapstructure:"max_depth"`
	MaxParams     int     `mapstructure:"max_params"`
	LR            float64 `mapstructure:"lr"`
	Plateau       float64 `mapstructure:"plateau"`
	IdleFraction  float64 `mapstructure:"idle_fraction"`
	Seed          uint64  `mapstructure:"seed"`
}

// DQN configures the deep RL recommender (see model.DQNConfig).
type DQN struct {
	Dim           int       `mapstructure:"dim"`
	Hidden        []int     `mapstructure:"hidden"`
	Window        int       `mapstructure:"window"`
	Decay         float64   `mapstructure:"decay"`
	LR            float64   `mapstructure:"lr"`
	HeadLR        float64   `mapstructure:"head_lr"`
	EmbLR         float64   `mapstructure:"emb_lr"`
	EmbNegatives  int       `mapstructure:"emb_negatives"`
	Negatives     int       `mapstructure:"negatives"`
	HardNegatives int       `mapstructure:"hard_negatives"`
	RowNegatives  int       `mapstructure:"row_negatives"`
	Rows          int       `mapstructure:"rows"`
	StepsPerBatch int       `mapstructure:"steps_per_batch"`
	Gamma         float64   `mapstructure:"gamma"`
	TDWeight      float64   `mapstructure:"td_weight"`
	TargetSync    int       `mapstructure:"target_sync"`
	Replay        int       `mapstructure:"replay"`
	AlphaInit     float64   `mapstructure:"alpha_init"`
	EWCLambda     float64   `mapstructure:"ewc_lambda"`
	EWCEvery      int       `mapstructure:"ewc_every"`
	Temperature   float64   `mapstructure:"temperature"`
	ExploreTop    int       `mapstructure:"explore_top"`
	Seed          uint64    `mapstructure:"seed"`
	Reward        DQNReward `mapstructure:"reward"`
}

// DQNReward maps feedback to reward.
type DQNReward struct {
	Click         float64 `mapstructure:"click"`
	View          float64 `mapstructure:"view"`
	ViewPerMinute float64 `mapstructure:"view_per_minute"`
	RatingCenter  float64 `mapstructure:"rating_center"`
	RatingScale   float64 `mapstructure:"rating_scale"`
}

// ItemKNN configures the incremental item-to-item recommender.
type ItemKNN struct {
	Window int     `mapstructure:"window"`
	Decay  float64 `mapstructure:"decay"`
}

// Popularity configures the recency-weighted popularity recommender.
type Popularity struct {
	HalfLife time.Duration `mapstructure:"half_life"`
}

// Sink configures the Kafka writers of every output topic.
type Sink struct {
	BatchTimeout time.Duration `mapstructure:"batch_timeout"`
	BatchSize    int           `mapstructure:"batch_size"`
	WriteTimeout time.Duration `mapstructure:"write_timeout"`
	MaxAttempts  int           `mapstructure:"max_attempts"`
}

// Worker configures the run loop around the stages.
type Worker struct {
	ShutdownTimeout   time.Duration `mapstructure:"shutdown_timeout"`
	MaxPendingBatches int           `mapstructure:"max_pending_batches"`
	ProgressInterval  time.Duration `mapstructure:"progress_interval"`
	HealthInterval    time.Duration `mapstructure:"health_interval"`
	StallTimeout      time.Duration `mapstructure:"stall_timeout"`
}

// Embedded configures the in-process broker's synthetic event source.
type Embedded struct {
	Source            string  `mapstructure:"source"`
	Rate              float64 `mapstructure:"rate"`
	Users             int     `mapstructure:"users"`
	Items             int     `mapstructure:"items"`
	MalformedFraction float64 `mapstructure:"malformed_fraction"`
	Seed              int64   `mapstructure:"seed"`
}

// Log configures the slog handler.
type Log struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// Tracing is OTLP span export. The standard OTEL_* environment variables
// override it (see telemetry.Resolve).
type Tracing struct {
	Enabled     bool    `mapstructure:"enabled"`
	Endpoint    string  `mapstructure:"endpoint"`
	Protocol    string  `mapstructure:"protocol"`
	SampleRatio float64 `mapstructure:"sample_ratio"`
	ServiceName string  `mapstructure:"service_name"`
}

// Metrics is the HTTP endpoint for /metrics, /healthz and /readyz, and
// the rolling quality gauges.
type Metrics struct {
	Addr               string `mapstructure:"addr"`
	QualitySampleEvery int    `mapstructure:"quality_sample_every"`
	QualityWindow      int    `mapstructure:"quality_window"`
}

// Snapshot configures model snapshots on Kafka.
type Snapshot struct {
	Topic        string        `mapstructure:"topic"`
	Interval     time.Duration `mapstructure:"interval"`
	EveryBatches int           `mapstructure:"every_batches"`
	OnShutdown   bool          `mapstructure:"on_shutdown"`
	Keep         int           `mapstructure:"keep"`
	Restore      bool          `mapstructure:"restore"`
	// RestoreTimeout bounds how long a worker that cannot read the
	// snapshot topic (or, later, the feedback it rebuilds sessions from)
	// retries before it exits with an error, instead of serving a model
	// that starts from nothing.
	RestoreTimeout time.Duration `mapstructure:"restore_timeout"`
	// Replica names this worker among the group's replicas ("": host-pid).
	Replica string `mapstructure:"replica"`
	// Merge merges the other replicas' newest snapshots into the model
	// before each snapshot (README: Replicas); PeerTimeout is how old a replica's newest
	// snapshot may be for it to count as live.
	Merge       bool          `mapstructure:"merge"`
	PeerTimeout time.Duration `mapstructure:"peer_timeout"`
	// Idle: after this long without events, the worker publishes what it
	// learned since its last snapshot and merges new snapshots of the
	// other replicas (0: off).
	Idle time.Duration `mapstructure:"idle"`
	// OrderTopic records the order in which the worker learned the
	// events, for bit-for-bit replay from a snapshot ("": off).
	OrderTopic string `mapstructure:"order_topic"`
	ChunkBytes int    `mapstructure:"chunk_bytes"`
}

// Bounds of snapshot.chunk_bytes: a chunk and its record overhead must fit
// in a message of Kafka's default 1 MB max.message.bytes.
const (
	MinSnapshotChunkBytes = 1 << 10
	MaxSnapshotChunkBytes = 900 << 10
)

// MaxDedupeWindow bounds dedupe.window: the set costs about 50 bytes of
// memory and 8 bytes of snapshot per key.
const MaxDedupeWindow = 10_000_000

// Sim is the simulated population (pipeline/sim) of eval --sim, simulate
// and make run.
type Sim struct {
	Users       int     `mapstructure:"users"`
	Items       int     `mapstructure:"items"`
	Topics      int     `mapstructure:"topics"`
	Dim         int     `mapstructure:"dim"`
	Concurrency int     `mapstructure:"concurrency"`
	Sessions    int     `mapstructure:"sessions"`
	Drift       float64 `mapstructure:"drift"`
	ShiftProb   float64 `mapstructure:"shift_prob"`
	ShiftAt     float64 `mapstructure:"shift_at"`
	NoChoice    float64 `mapstructure:"no_choice"`
	Temperature float64 `mapstructure:"temperature"`
	PopWeight   float64 `mapstructure:"pop_weight"`
	Fatigue     float64 `mapstructure:"fatigue"`
	Patience    float64 `mapstructure:"patience"`
	MaxSteps    int     `mapstructure:"max_steps"`
	ViewProb    float64 `mapstructure:"view_prob"`
	RatingProb  float64 `mapstructure:"rating_prob"`
	Seed        uint64  `mapstructure:"seed"`
}

// Models lists the values recommender.model accepts.
var Models = []string{"dqn", "adaptive", "popularity", "itemknn"}

// Default returns the configuration of the embedded default file.
func Default() Config {
	c, err := Load(LoadOptions{})
	if err != nil {
		// The embedded file is checked by the tests; failing here is a build defect.
		panic(fmt.Sprintf("configs: embedded adaptrec.yaml is invalid: %v", err))
	}
	return c
}

// LoadOptions says where Load finds the layers above the defaults.
type LoadOptions struct {
	// File is a YAML config file; empty means none.
	File string
	// Environ is the environment to read ADAPTREC_* variables from, as
	// os.Environ returns it; nil means none (tests stay hermetic).
	Environ []string
	// Flags maps config keys to flags; a flag overrides only if it was set.
	Flags map[string]*pflag.Flag
}

// Load builds the configuration from the defaults, the file, the environment
// and the flags, in that order of precedence, then validates it.
func Load(opts LoadOptions) (Config, error) {
	v := viper.New()
	defaults := viper.New()
	defaults.SetConfigType("yaml")
	if err := defaults.ReadConfig(bytes.NewReader(DefaultYAML)); err != nil {
		return Config{}, fmt.Errorf("reading embedded defaults: %w", err)
	}
	known := map[string]bool{}
	for _, k := range defaults.AllKeys() {
		known[k] = true
		v.SetDefault(k, defaults.Get(k))
	}

	if opts.File != "" {
		raw, err := os.ReadFile(opts.File)
		if err != nil {
			return Config{}, fmt.Errorf("config file: %w", err)
		}
		fv := viper.New()
		fv.SetConfigType("yaml")
		if err := fv.ReadConfig(bytes.NewReader(raw)); err != nil {
			return Config{}, fmt.Errorf("config file %s: %w", opts.File, err)
		}
		if err := checkKeys(fv.AllKeys(), known); err != nil {
			return Config{}, fmt.Errorf("config file %s: %w", opts.File, err)
		}
		if err := v.MergeConfigMap(fv.AllSettings()); err != nil {
			return Config{}, fmt.Errorf("config file %s: %w", opts.File, err)
		}
	}

	var unknown []string
	for _, kv := range opts.Environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix+"_") {
			continue
		}
		key, ok := envKey(name, known)
		if !ok {
			unknown = append(unknown, name)
			continue
		}
		v.Set(key, val)
	}
	for _, name := range unknown {
		// The variable kafka.sasl.password_env names may be ADAPTREC_*.
		if name != v.GetString("kafka.sasl.password_env") {
			return Config{}, fmt.Errorf("environment variable %s: unknown key (see configs/adaptrec.yaml)%s", name, passwordHint(strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, EnvPrefix+"_"), "_", "."))))
		}
	}

	for key, f := range opts.Flags {
		if !known[key] {
			return Config{}, fmt.Errorf("flag --%s is bound to unknown key %q", f.Name, key)
		}
		if f.Changed {
			if sv, ok := f.Value.(pflag.SliceValue); ok {
				v.Set(key, sv.GetSlice())
			} else {
				v.Set(key, f.Value.String())
			}
		}
	}

	var c Config
	if err := decode(v.AllSettings(), &c); err != nil {
		return Config{}, err
	}
	if err := c.Check(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// envKey maps ADAPTREC_BATCH_MAX_WAIT to batch.max_wait. Underscores are
// ambiguous (they both join levels and appear inside key names), so the
// variable is matched against the known keys rather than split blindly.
func envKey(name string, known map[string]bool) (string, bool) {
	want := strings.ToLower(strings.TrimPrefix(name, EnvPrefix+"_"))
	for k := range known {
		if strings.ReplaceAll(k, ".", "_") == want {
			return k, true
		}
	}
	return "", false
}

func checkKeys(keys []string, known map[string]bool) error {
	slices.Sort(keys)
	for _, k := range keys {
		if known[k] {
			continue
		}
		// A scalar where a section is expected shows up as the section's name.
		for kk := range known {
			if strings.HasPrefix(kk, k+".") {
				return fmt.Errorf("key %q must be a mapping of keys, not a value", k)
			}
		}
		return fmt.Errorf("unknown key %q (see configs/adaptrec.yaml)%s", k, passwordHint(k))
	}
	return nil
}

// passwordHint explains, for a key that looks like a password, where the
// password goes instead.
func passwordHint(key string) string {
	if key != "kafka.sasl.password" {
		return ""
	}
	return ": the password is read from the environment variable named by kafka.sasl.password_env or from kafka.sasl.password_file, never from the config"
}

func decode(settings map[string]any, c *Config) error {
	var md mapstructure.Metadata
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:           c,
		Metadata:         &md,
		WeaklyTypedInput: true,
		ErrorUnused:      true,
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		),
	})
	if err != nil {
		return err
	}
	if err := dec.Decode(settings); err != nil {
		return fmt.Errorf("invalid config: %w", unwrapDecode(err))
	}
	return nil
}

// unwrapDecode rewrites mapstructure's messages into "key: problem" lines.
func unwrapDecode(err error) error {
	msg := err.Error()
	msg = strings.ReplaceAll(msg, "decoding failed due to the following error(s):\n\n", "")
	return errors.New(strings.TrimSpace(msg))
}

// Check checks every value that the types alone do not constrain; each
// error names its key.
func (c Config) Check() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if len(c.Kafka.Brokers) == 0 {
		bad("kafka.brokers", "at least one broker is required")
	}
	for _, b := range c.Kafka.Brokers {
		host, port, err := net.SplitHostPort(b)
		if err != nil || host == "" {
			bad("kafka.brokers", "%q is not HOST:PORT", b)
			continue
		}
		if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
			bad("kafka.brokers", "%q has an invalid port", b)
		}
	}
	nonEmpty := map[string]string{
		"kafka.group": c.Kafka.Group, "kafka.client_id": c.Kafka.ClientID,
		"topics.feedback": c.Topics.Feedback, "topics.recommendations": c.Topics.Recommendations,
		"topics.dlq": c.Topics.DLQ, "topics.decisions": c.Topics.Decisions,
	}
	for _, k := range sortedKeys(nonEmpty) {
		if strings.TrimSpace(nonEmpty[k]) == "" {
			bad(k, "must not be empty")
		}
	}
	for _, k := range []string{"topics.feedback", "topics.recommendations", "topics.dlq", "topics.decisions"} {
		if name := nonEmpty[k]; name != "" && !validTopic(name) {
			bad(k, "%q is not a valid Kafka topic name (letters, digits, '.', '_', '-'; at most 249)", name)
		}
	}
	if c.Topics.Feedback != "" && (c.Topics.Feedback == c.Topics.Recommendations || c.Topics.Feedback == c.Topics.DLQ || c.Topics.Feedback == c.Topics.Decisions) {
		bad("topics.feedback", "must differ from the output topics")
	}
	positiveDur := map[string]time.Duration{
		"kafka.session_timeout": c.Kafka.SessionTimeout, "kafka.heartbeat_interval": c.Kafka.HeartbeatInterval,
		"kafka.rebalance_timeout": c.Kafka.RebalanceTimeout, "kafka.join_group_backoff": c.Kafka.JoinGroupBackoff,
		"kafka.fetch_max_wait":  c.Kafka.FetchMaxWait,
		"kafka.request_timeout": c.Kafka.RequestTimeout, "batch.max_wait": c.Batch.MaxWait,
		"session.idle_gap": c.Session.IdleGap, "session.ttl": c.Session.TTL,
		"recommender.popularity.half_life": c.Recommender.Popularity.HalfLife,
		"sink.batch_timeout":               c.Sink.BatchTimeout, "sink.write_timeout": c.Sink.WriteTimeout,
		"worker.shutdown_timeout": c.Worker.ShutdownTimeout,
		"worker.health_interval":  c.Worker.HealthInterval, "worker.stall_timeout": c.Worker.StallTimeout,
	}
	for _, k := range sortedKeys(positiveDur) {
		if positiveDur[k] <= 0 {
			bad(k, "must be a positive duration, got %v", positiveDur[k])
		}
	}
	errs = append(errs, c.Kafka.TLS.check()...)
	errs = append(errs, c.Kafka.SASL.check()...)
	if c.Kafka.HeartbeatInterval >= c.Kafka.SessionTimeout && c.Kafka.SessionTimeout > 0 {
		bad("kafka.heartbeat_interval", "must be shorter than kafka.session_timeout (%v)", c.Kafka.SessionTimeout)
	}
	if c.Worker.StallTimeout > 0 && c.Worker.HealthInterval >= c.Worker.StallTimeout {
		bad("worker.stall_timeout", "must be longer than worker.health_interval (%v), got %v", c.Worker.HealthInterval, c.Worker.StallTimeout)
	}
	if c.Recommender.UserTTL < 0 {
		bad("recommender.user_ttl", "must not be negative")
	}
	if c.Worker.ProgressInterval < 0 {
		bad("worker.progress_interval", "must not be negative")
	}
	positiveInt := map[string]int{
		"kafka.fetch_max_bytes": c.Kafka.FetchMaxBytes, "topics.partitions": c.Topics.Partitions,
		"topics.replication_factor": c.Topics.ReplicationFactor, "batch.size": c.Batch.Size,
		"validate.max_event_bytes": c.Validate.MaxEventBytes, "validate.max_id_bytes": c.Validate.MaxIDBytes,
		"session.max_sessions": c.Session.MaxSessions, "recommender.top_n": c.Recommender.TopN,
		"recommender.max_users": c.Recommender.MaxUsers,
		"sink.batch_size":       c.Sink.BatchSize, "sink.max_attempts": c.Sink.MaxAttempts,
		"worker.max_pending_batches": c.Worker.MaxPendingBatches, "embedded.users": c.Embedded.Users, "embedded.items": c.Embedded.Items,
	}
	for _, k := range sortedKeys(positiveInt) {
		if positiveInt[k] <= 0 {
			bad(k, "must be positive, got %d", positiveInt[k])
		}
	}
	if c.Batch.Size > 1_000_000 {
		bad("batch.size", "must be at most 1000000, got %d", c.Batch.Size)
	}
	if c.Recommender.TopN > 1000 {
		bad("recommender.top_n", "must be at most 1000, got %d", c.Recommender.TopN)
	}
	if c.Snapshot.Topic == "" || !validTopic(c.Snapshot.Topic) {
		bad("snapshot.topic", "%q is not a valid Kafka topic name", c.Snapshot.Topic)
	}
	if c.Snapshot.Keep <= 0 {
		bad("snapshot.keep", "must be positive, got %d", c.Snapshot.Keep)
	}
	if c.Session.RebuildEvents < 0 {
		bad("session.rebuild_events", "must not be negative, got %d", c.Session.RebuildEvents)
	}
	if t := c.Snapshot.OrderTopic; t != "" && (!validTopic(t) || t == c.Snapshot.Topic || t == c.Topics.Feedback) {
		bad("snapshot.order_topic", "%q is not a valid Kafka topic name of its own", t)
	}
	if c.Snapshot.Idle < 0 {
		bad("snapshot.idle", "must not be negative, got %v", c.Snapshot.Idle)
	}
	if c.Snapshot.RestoreTimeout <= 0 {
		bad("snapshot.restore_timeout", "must be a positive duration, got %v", c.Snapshot.RestoreTimeout)
	}
	if c.Snapshot.PeerTimeout <= 0 {
		bad("snapshot.peer_timeout", "must be a positive duration, got %v", c.Snapshot.PeerTimeout)
	}
	if strings.ContainsAny(c.Snapshot.Replica, "/ ") {
		bad("snapshot.replica", "must not contain '/' or spaces, got %q", c.Snapshot.Replica)
	}
	if n := c.Snapshot.ChunkBytes; n < MinSnapshotChunkBytes || n > MaxSnapshotChunkBytes {
		bad("snapshot.chunk_bytes", "must be within %d..%d, got %d", MinSnapshotChunkBytes, MaxSnapshotChunkBytes, n)
	}
	if c.Snapshot.Interval < 0 || c.Snapshot.EveryBatches < 0 {
		bad("snapshot.interval", "snapshot.interval and snapshot.every_batches must not be negative")
	}
	switch c.Tracing.Protocol {
	case "grpc", "http/protobuf":
	default:
		bad("tracing.protocol", "must be grpc or http/protobuf, got %q", c.Tracing.Protocol)
	}
	if r := c.Tracing.SampleRatio; r < 0 || r > 1 {
		bad("tracing.sample_ratio", "must be within [0, 1], got %g", r)
	}
	if strings.TrimSpace(c.Tracing.ServiceName) == "" {
		bad("tracing.service_name", "must not be empty")
	}
	if c.Tracing.Endpoint != "" {
		if u, err := url.Parse(c.Tracing.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("tracing.endpoint", "%q is not an http:// or https:// URL", c.Tracing.Endpoint)
		}
	}
	if a := c.Metrics.Addr; a != "" {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			bad("metrics.addr", "%q is not HOST:PORT (empty turns the endpoint off)", a)
		}
	}
	if c.Metrics.QualitySampleEvery < 0 {
		bad("metrics.quality_sample_every", "must not be negative")
	}
	if c.Metrics.QualityWindow <= 0 {
		bad("metrics.quality_window", "must be positive, got %d", c.Metrics.QualityWindow)
	}
	switch c.Kafka.StartOffset {
	case "earliest", "latest":
	default:
		bad("kafka.start_offset", "must be earliest or latest, got %q", c.Kafka.StartOffset)
	}
	if c.Validate.MaxFuture < 0 {
		bad("validate.max_future", "must not be negative, got %v", c.Validate.MaxFuture)
	}
	if m := c.Validate.MinTime; m != "" {
		if _, err := time.Parse(time.RFC3339, m); err != nil {
			bad("validate.min_time", "%q is not an RFC 3339 time (empty: no bound)", m)
		}
	}
	if c.Dedupe.Window < 0 || c.Dedupe.Window > MaxDedupeWindow {
		bad("dedupe.window", "must be within 0..%d, got %d", MaxDedupeWindow, c.Dedupe.Window)
	}
	if c.Validate.RatingMin >= c.Validate.RatingMax {
		bad("validate.rating_min", "must be below validate.rating_max (%g), got %g", c.Validate.RatingMax, c.Validate.RatingMin)
	}
	if !slices.Contains(Models, c.Recommender.Model) {
		bad("recommender.model", "must be one of %s, got %q", strings.Join(Models, ", "), c.Recommender.Model)
	}
	if c.Recommender.ItemKNN.Window <= 0 || c.Recommender.ItemKNN.Window > 1000 {
		bad("recommender.itemknn.window", "must be within 1..1000, got %d", c.Recommender.ItemKNN.Window)
	}
	if d := c.Recommender.ItemKNN.Decay; d <= 0 || d > 1 {
		bad("recommender.itemknn.decay", "must be within (0, 1], got %g", d)
	}
	q := c.Recommender.DQN
	dqnPositive := map[string]int{
		"recommender.dqn.dim": q.Dim, "recommender.dqn.window": q.Window, "recommender.dqn.rows": q.Rows,
		"recommender.dqn.steps_per_batch": q.StepsPerBatch, "recommender.dqn.target_sync": q.TargetSync,
		"recommender.dqn.replay": q.Replay, "recommender.dqn.explore_top": q.ExploreTop,
	}
	for _, k := range sortedKeys(dqnPositive) {
		if dqnPositive[k] <= 0 {
			bad(k, "must be positive, got %d", dqnPositive[k])
		}
	}
	if q.Window > 32 {
		bad("recommender.dqn.window", "must be at most 32, got %d", q.Window)
	}
	for _, w := range q.Hidden {
		if w <= 0 || w > 4096 {
			bad("recommender.dqn.hidden", "widths must be within 1..4096, got %v", q.Hidden)
			break
		}
	}
	if q.Negatives < 0 || q.HardNegatives < 0 || q.RowNegatives < 0 || q.Negatives+q.HardNegatives+q.RowNegatives == 0 {
		bad("recommender.dqn.negatives", "negatives, hard_negatives and row_negatives must not be negative and not all 0")
	}
	if q.HardNegatives+q.RowNegatives > 64 {
		bad("recommender.dqn.row_negatives", "hard_negatives + row_negatives must be at most 64, got %d", q.HardNegatives+q.RowNegatives)
	}
	dqnRates := map[string]float64{"recommender.dqn.lr": q.LR, "recommender.dqn.head_lr": q.HeadLR,
		"recommender.dqn.emb_lr": q.EmbLR, "recommender.dqn.alpha_init": q.AlphaInit}
	for _, k := range sortedKeys(dqnRates) {
		if dqnRates[k] <= 0 {
			bad(k, "must be positive, got %g", dqnRates[k])
		}
	}
	if q.EmbNegatives < 0 || q.EmbNegatives+q.HardNegatives == 0 {
		bad("recommender.dqn.emb_negatives", "emb_negatives + hard_negatives must be positive, got %d", q.EmbNegatives+q.HardNegatives)
	}
	if q.Decay <= 0 || q.Decay > 1 {
		bad("recommender.dqn.decay", "must be within (0, 1], got %g", q.Decay)
	}
	if q.Gamma < 0 || q.Gamma >= 1 {
		bad("recommender.dqn.gamma", "must be within [0, 1), got %g", q.Gamma)
	}
	if q.EWCLambda < 0 || q.EWCEvery <= 0 {
		bad("recommender.dqn.ewc_lambda", "ewc_lambda must not be negative and ewc_every must be positive")
	}
	if q.TDWeight < 0 || q.Temperature < 0 {
		bad("recommender.dqn.td_weight", "td_weight and temperature must not be negative")
	}
	if q.Reward.RatingScale <= 0 {
		bad("recommender.dqn.reward.rating_scale", "must be positive, got %g", q.Reward.RatingScale)
	}
	ad := c.Recommender.Adaptive
	if ad.Controller != "rl" && ad.Controller != "heuristic" {
		bad("recommender.adaptive.controller", "must be rl or heuristic, got %q", ad.Controller)
	}
	adPositive := map[string]int{
		"recommender.adaptive.epoch_sessions": ad.EpochSessions, "recommender.adaptive.step": ad.Step,
		"recommender.adaptive.sample_every": ad.SampleEvery, "recommender.adaptive.min_width": ad.MinWidth,
		"recommender.adaptive.max_depth": ad.MaxDepth,
	}
	for _, k := range sortedKeys(adPositive) {
		if adPositive[k] <= 0 {
			bad(k, "must be positive, got %d", adPositive[k])
		}
	}
	if ad.MaxWidth < ad.MinWidth {
		bad("recommender.adaptive.max_width", "must be at least min_width (%d), got %d", ad.MinWidth, ad.MaxWidth)
	}
	if ad.MinDepth < 0 || ad.MinDepth > ad.MaxDepth {
		bad("recommender.adaptive.min_depth", "must be within 0..max_depth (%d), got %d", ad.MaxDepth, ad.MinDepth)
	}
	if ad.Lambda < 0 || ad.LR <= 0 || ad.MaxParams < 0 {
		bad("recommender.adaptive.lambda", "lambda and max_params must not be negative, lr must be positive")
	}
	if c.Embedded.Source != "sim" && c.Embedded.Source != "synth" {
		bad("embedded.source", "must be sim or synth, got %q", c.Embedded.Source)
	}
	if c.Embedded.Rate <= 0 {
		bad("embedded.rate", "must be positive, got %g", c.Embedded.Rate)
	}
	if c.Embedded.MalformedFraction < 0 || c.Embedded.MalformedFraction > 1 {
		bad("embedded.malformed_fraction", "must be within [0, 1], got %g", c.Embedded.MalformedFraction)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "must be text or json, got %q", c.Log.Format)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("invalid config: %w", errors.Join(errs...))
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

func validTopic(s string) bool {
	if len(s) > 249 || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
