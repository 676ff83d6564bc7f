// Package model owns what adaptrec learns and serves: the item vocabulary,
// per-user state, the recommenders behind the Recommender interface, and the
// lists they publish.
//
// Data enters as a feedback.Batch (an Arrow record of events in consumption
// order) through Recommender.Learn and leaves as one Recommendation per user
// of the batch. A Recommender is owned by one goroutine: the pipeline's model
// stage calls it, and nothing else touches it.
//
// Each model is configured by an options struct of its own (DQNConfig,
// AdaptiveConfig, ItemKNNConfig, PopularityConfig), gathered in Options,
// which New builds from; each validates itself and has a DefaultX agreeing
// with configs/adaptrec.yaml. model reads no config: configs/wire maps the
// config keys onto Options.
package model
