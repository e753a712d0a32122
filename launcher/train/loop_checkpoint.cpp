// The training loop's checkpoints and resume (docs/CHECKPOINTS.md): the protocol is the
// loop's, the contents the recipe's (Recipe::fill_checkpoint, Recipe::restore).
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "core/io/h5.h"
#include "launcher/train/loop_impl.h"

namespace dtrain::launcher {

// Note [Checkpoint protocol]: every rank calls save() at the same steps (the decision
// is a function of the step and the agreed stop flag). The one collective inside is an
// all_gather of every rank's random streams (the recipe's rank_streams(); skipped when it
// has none, which every rank knows alike), so rank 0 can write /rng/rank<r>/ for all
// ranks; rank 0 then writes and prunes alone (Note [Checkpoint commit] in
// core/checkpoint.h) while the others wait in check_all_ok, which doubles as the barrier
// that tells every rank whether the write succeeded. A failed write leaves the older
// checkpoints untouched (Note [Checkpoint commit]); what happens next is
// Note [Failed checkpoints].
//
// Note [Failed checkpoints]: rank 0 classifies a failed write and broadcasts the class,
// so that every rank takes the same branch:
//   - an IoError (a full disk or quota, an I/O error at write/fsync/close, a failed
//     rename) of a *periodic* checkpoint: training continues with a loud warning naming
//     the file, the cause and the newest complete checkpoint, and the next periodic one
//     is tried as scheduled; checkpoint.tolerate_failures (default 2) failures in a row
//     are tolerated, one more stops the run (exit 1);
//   - any failure of the *final* checkpoint or of the checkpoint on a *stop* request, and
//     any other error (a bug, not the disk): the run stops on every rank, exit 1.
// Why: a periodic checkpoint is insurance. Losing one costs at most checkpoint.every
// steps if the job later crashes, while stopping a run of days because a shared
// filesystem was briefly full or failing loses the running job and its queue slot; a
// disk that stays broken stops the run after a bounded number of intervals instead of
// training for days without a way back. The final and stop checkpoints are the run's
// result and its only way to continue: exiting 0 (or 75, "requeue me") without them would
// lie, so their failure is an error the user or the scheduler must see.
bool TrainLoop::Impl::save(int64_t step, data::Position pos, SaveKind kind) {
  const int w = world.size();
  const std::vector<std::pair<std::string, Generator*>> streams = recipe->rank_streams();
  const int64_t n = static_cast<int64_t>(streams.size());
  std::vector<int64_t> all_states;
  if (n > 0) {
    std::vector<int64_t> mine;
    for (const auto& [name, g] : streams) {
      Generator::State st = g->state();
      mine.push_back(static_cast<int64_t>(st.seed));
      mine.push_back(static_cast<int64_t>(st.offset));
    }
    Tensor in = Tensor::from_vector<int64_t>(mine, {2 * n});
    Tensor out = Tensor::zeros({2 * n * w}, DType::I64);
    world.control().all_gather(in, out)->wait();
    all_states = out.to_vector<int64_t>();
  }
  std::exception_ptr error;
  int64_t failure = 0;  // rank 0's outcome: 0 written, 1 an IoError, 2 another error
  std::string why;
  if (rank0()) {
    try {
      ckpt::Contents c;
      recipe->fill_checkpoint(c);
      for (int r = 0; r < w; ++r) {
        for (int64_t i = 0; i < n; ++i) {
          const size_t at = static_cast<size_t>((r * n + i) * 2);
          c.rng.push_back({r, streams[static_cast<size_t>(i)].first,
                           {static_cast<uint64_t>(all_states[at]), static_cast<uint64_t>(all_states[at + 1])}});
        }
      }
      ckpt::TrainerState& t = c.trainer;
      t.step = step;
      t.epoch = pos.epoch;
      t.cursor = pos.cursor;
      t.seed = cfg.seed;
      t.world_size = w;
      t.global_batch = ctx.global_micro_batch() * cfg.grad_accum;
      t.schedule_step = step;
      t.config = canonical(cfg);
      t.build = build_id();
      commit_checkpoint(c);
    } catch (const IoError& e) {
      error = std::current_exception();
      failure = 1;
      why = e.what();
    } catch (...) {
      error = std::current_exception();
      failure = 2;
    }
  }
  // Note [Failed checkpoints]: every rank takes rank 0's branch.
  Tensor outcome = Tensor::from_vector<int64_t>({failure}, {1});
  world.control().broadcast(outcome, 0)->wait();
  failure = outcome.to_vector<int64_t>()[0];
  if (failure == 0) {
    world.check_all_ok(error, "writing the checkpoint of step " + std::to_string(step));
    failed_checkpoints = 0;
    return true;
  }
  ++failed_checkpoints;
  if (auto at = why.rfind(" ["); at != std::string::npos && !why.empty() && why.back() == ']') why.resize(at);
  std::string newest = "there is no complete checkpoint yet";
  if (rank0()) {
    const auto complete = ckpt::list_complete(cfg.checkpoint_dir);
    if (!complete.empty()) {
      newest = "the newest complete checkpoint, ";
      newest += complete.front().second;
      newest += ", is intact";
    }
  }
  const int64_t tolerated = cfg.checkpoint_tolerate_failures;
  if (failure == 1 && kind == SaveKind::Periodic && failed_checkpoints <= tolerated) {
    if (rank0()) {
      log.warn("the checkpoint of step ", step, " was not written: ", why, "; training continues (", failed_checkpoints,
               " of ", tolerated, " failed checkpoints in a row tolerated, checkpoint.tolerate_failures); ", newest,
               "; the next checkpoint is tried as scheduled");
      std::ostringstream m;
      m << "{\"kind\":\"checkpoint_failed\",\"step\":" << step << ",\"in_a_row\":" << failed_checkpoints
        << ",\"error\":" << json_string(why) << "}";
      write_metrics(m.str());
    }
    return false;
  }
  if (failure == 1 && rank0()) {
    // The error every rank stops with names the file, the cause and what to do.
    std::ostringstream m;
    m << "the checkpoint of step " << step << " was not written: " << why << "; ";
    if (kind == SaveKind::Periodic) {
      m << "that is " << failed_checkpoints << " failed checkpoints in a row, more than checkpoint.tolerate_failures = "
        << tolerated << ", so the run stops";
    } else {
      m << "the " << (kind == SaveKind::Final ? "final checkpoint" : "checkpoint on a stop request")
        << " must be written, so the run fails";
    }
    m << "; " << newest << ": free space or fix the filesystem, then continue with --resume auto";
    error = std::make_exception_ptr(IoError(m.str()));
  }
  world.check_all_ok(error, "writing the checkpoint of step " + std::to_string(step));
  return false;  // not reached: check_all_ok throws on every rank
}

// Note [Resume agreement]: rank 0 alone picks the checkpoint (the newest that verifies,
// for --resume auto) and broadcasts its step, so every rank loads the same one even while
// another job's files change under them; every rank then reads that file itself (the
// checkpoint directory must be on a filesystem all ranks see). Failures on any rank are
// agreed through check_all_ok, so no rank trains on while another stops.
void TrainLoop::Impl::resume() {
  std::string path;
  const int64_t step = choose_checkpoint(path);
  if (step < 0) return;
  std::exception_ptr error;
  try {
    load(path, step);
  } catch (...) {
    error = std::current_exception();
  }
  world.check_all_ok(error, "loading checkpoint " + path);
}

void TrainLoop::Impl::load(const std::string& path, int64_t step) {
  // Rank 0 verified the file (marker, checksum, version); the others trust that and
  // check that they read the same step.
  ckpt::Contents c = ckpt::read(path, /*verified=*/true);
  DT_CHECK_AS(c.trainer.step == step, IoError, "checkpoint '", path, "' holds step ", c.trainer.step, ", rank 0 chose ",
              step, ": do all ranks see the same checkpoint directory?");
  recipe->restore(path, c);

  // Random streams: this rank's, when the writing run had this rank.
  const int r = world.rank();
  const std::vector<std::pair<std::string, Generator*>> streams = recipe->rank_streams();
  int64_t restored = 0;
  for (const auto& [name, g] : streams) {
    for (const ckpt::RngStream& s : c.rng) {
      if (s.rank == r && s.name == name) {
        g->set_state(s.state);
        ++restored;
      }
    }
  }
  if (restored < static_cast<int64_t>(streams.size()) && r < c.trainer.world_size) {
    log.warn("checkpoint '", path, "' lacks ", static_cast<int64_t>(streams.size()) - restored,
             " of this rank's random streams; they start fresh");
  }

  const data::Position pos{c.trainer.epoch, c.trainer.cursor};
  train->seek(pos);
  start_step = step;
  resumed = true;
  resumed_step = step;
  if (rank0()) {
    std::printf("resumed from %s: step %lld, epoch %lld, sample %lld of the epoch\n", path.c_str(),
                static_cast<long long>(step), static_cast<long long>(pos.epoch + 1),
                static_cast<long long>(pos.cursor));
    if (c.trainer.world_size != world.size()) {
      std::printf("note: the checkpoint was written by %lld rank%s, this run has %d: %s\n",
                  static_cast<long long>(c.trainer.world_size), c.trainer.world_size > 1 ? "s" : "", world.size(),
                  recipe->world_size_note(c.trainer.world_size).c_str());
    }
    if (std::string changes = config_changes(c.trainer.config, canonical(cfg)); !changes.empty()) {
      std::printf("note: configuration changed since the checkpoint: %s\n", changes.c_str());
    }
    if (c.trainer.build != build_id()) {
      std::printf("note: the checkpoint was written by %s, this is %s\n", c.trainer.build.c_str(), build_id().c_str());
    }
    std::fflush(stdout);
  }
}

int64_t TrainLoop::Impl::choose_checkpoint(std::string& path) {
  std::exception_ptr error;
  int64_t step = -1;
  if (rank0()) {
    try {
      if (cfg.resume == "auto") {
        auto found = ckpt::find_latest(cfg.checkpoint_dir, log);
        if (found) {
          step = found->first;
          path = found->second;
        } else {
          std::printf("resume: no complete checkpoint in %s; starting from step 0\n", cfg.checkpoint_dir.c_str());
        }
      } else {
        ckpt::verify(cfg.resume);
        step = io::H5File::open_read(cfg.resume).get_attribute<int64_t>("/trainer", "step");
        path = cfg.resume;
      }
    } catch (...) {
      error = std::current_exception();
    }
  }
  world.check_all_ok(error, "choosing the checkpoint to resume from");
  Tensor chosen = Tensor::from_vector<int64_t>({step}, {1});
  world.control().broadcast(chosen, 0)->wait();
  step = chosen.to_vector<int64_t>()[0];
  if (step >= 0 && !rank0()) {
    path = cfg.resume == "auto" ? (std::filesystem::path(cfg.checkpoint_dir) / ckpt::file_name(step)).string()
                                : cfg.resume;
  }
  return step;
}

void TrainLoop::Impl::commit_checkpoint(const ckpt::Contents& c) {
  const int64_t step = c.trainer.step;
  const auto t0 = Clock::now();
  ckpt::StageHook hook;
  if (knobs.crash_in_ckpt_step == step) {
    hook = [this](const std::string& stage) {
      if (stage == knobs.crash_in_ckpt_stage) {
        std::fflush(stdout);
        std::raise(SIGKILL);
      }
    };
  }
  last_checkpoint = ckpt::write(cfg.checkpoint_dir, c, hook);
  const double write_s = seconds_since(t0);
  std::vector<std::string> removed = ckpt::prune(cfg.checkpoint_dir, cfg.checkpoint_keep_last);
  std::error_code ec;
  const double mib = static_cast<double>(std::filesystem::file_size(last_checkpoint, ec)) / (1 << 20);
  std::printf("checkpoint step %lld: %s (%.1f MiB in %.2f s%s)\n", static_cast<long long>(step),
              last_checkpoint.c_str(), mib, write_s,
              removed.empty() ? "" : (", " + std::to_string(removed.size()) + " old files removed").c_str());
  std::fflush(stdout);
  write_metrics("{\"kind\":\"checkpoint\",\"step\":" + std::to_string(step) + ",\"path\":" +
                json_string(last_checkpoint) + ",\"mib\":" + json_number(mib) + ",\"write_s\":" +
                json_number(write_s) + "}");
}

}  // namespace dtrain::launcher
