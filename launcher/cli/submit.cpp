// `dtrain submit`: writes a Slurm batch script for `dtrain train` (launcher/slurm/
// batch_script.h) and submits it with sbatch. See docs/SLURM.md.
#include <limits.h>
#include <unistd.h>

#include <cstdio>
#include <sstream>

#include "core/error.h"
#include "launcher/cli/args.h"
#include "launcher/cli/commands.h"
#include "launcher/slurm/batch_script.h"
#include "launcher/slurm/process.h"

namespace dtrain::cli {

namespace {

constexpr const char* kRestHelp =
    "the config and any 'dtrain train' options, passed to 'dtrain train' unchanged. Submit's own\n"
    "      options come first: the first argument that is neither one of them nor an option's value\n"
    "      is CONFIG, and everything after it goes to 'dtrain train' (so '--nodes 2' after CONFIG is\n"
    "      not submit's). A '--' before CONFIG also ends submit's options ('dtrain submit --nodes 2\n"
    "      -- CONFIG ...', the older form; the '--' itself is not passed on).";

constexpr const char* kEpilog =
    "The job runs\n"
    "  srun --mpi=pmix <this dtrain> train CONFIG [TRAIN-OPTIONS...] --resume auto\n"
    "(--resume auto is added unless the train options already name --resume), with rank and world\n"
    "from MPI. Without --ntasks-per-node, a job that asks for --gpus-per-node N runs N ranks per\n"
    "node (one per GPU), else one.\n"
    "\n"
    "The script asks for --signal=B:USR1@SECONDS, --requeue and --open-mode=append: before the time\n"
    "limit (or on 'scancel --batch --signal=USR1 JOB') the ranks checkpoint at a step boundary, stop,\n"
    "and rank 0 requeues the job, which resumes from that checkpoint. docs/SLURM.md has the details.\n"
    "\n"
    "Examples:\n"
    "  dtrain submit --nodes 2 --gpus-per-node 4 --time 24:00:00 --partition gpu \\\n"
    "      configs/vgg16_cifar.toml --set device=cuda --checkpoint-every 500\n"
    "  dtrain submit --dry-run --sbatch --constraint=a100 --sbatch '--mail-type=END' configs/x.toml\n"
    "  dtrain submit --nodes 2 -- configs/x.toml --set epochs=10     ('--' before CONFIG: the older form)\n"
    "\n"
    "Prints the job id on stdout. Exit codes: 0 submitted (or printed), 1 sbatch failed or is missing,\n"
    "2 bad usage or a config that 'dtrain train' rejects.\n";

std::string self_path() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) DT_THROW(IoError, "dtrain submit: cannot find this program's path (/proc/self/exe); give --binary PATH");
  return std::string(buf, static_cast<size_t>(n));
}

std::string cwd() {
  char buf[PATH_MAX];
  if (!getcwd(buf, sizeof buf)) DT_THROW(IoError, "dtrain submit: cannot read the working directory");
  return buf;
}

}  // namespace

int submit_main(const std::vector<std::string>& args) {
  ArgParser p("dtrain submit",
                   "Writes a Slurm batch script that runs 'dtrain train' on every task of the job, checkpoints and "
                   "requeues itself before the time limit, and submits it with sbatch.");
  p.add_option("nodes", "N", "nodes", "1");
  p.add_option("ntasks-per-node", "N",
               "tasks (ranks) per node: one per GPU with device=cuda (default: --gpus-per-node when that is "
               "given, else 1)");
  p.add_option("gpus-per-node", "N", "GPUs per node; 0 = none requested", "0");
  p.add_option("time", "LIMIT", "time limit, as sbatch takes it (e.g. 24:00:00, 2-00:00:00)");
  p.add_option("partition", "NAME", "partition");
  p.add_option("account", "NAME", "account to charge");
  p.add_option("job-name", "NAME", "job name", "dtrain");
  p.add_option("output", "FILE", "the job's stdout and stderr (appended to across requeues; %j = job id)",
               "dtrain-%j.out");
  p.add_option("chdir", "DIR", "the job's working directory (default: this one)");
  p.add_option("signal-seconds", "S", "send SIGUSR1 this many seconds before the time limit (--signal=B:USR1@S)",
               "120");
  p.add_option("max-restarts", "N",
               "requeue a job the watchdog ended (exit code 86: a rank froze or stalled) at most N times, "
               "resuming from its last checkpoint",
               "3");
  p.add_repeated_option("sbatch", "LINE", "an extra #SBATCH line, e.g. --sbatch=--constraint=a100");
  p.add_option("binary", "PATH", "the dtrain the job runs (default: this program)");
  p.add_flag("dry-run", "print the batch script and do not submit it");
  p.add_flag("no-check", "submit without first checking the config with 'dtrain train --print-config'");
  p.add_rest("CONFIG [TRAIN-OPTIONS...]", kRestHelp);
  p.set_epilog(kEpilog);

  p.parse(args);
  if (p.help_requested()) {
    std::printf("%s", p.help().c_str());
    return 0;
  }
  const std::vector<std::string>& train = p.rest();
  const std::vector<std::string> extra = p.get_all("sbatch");
  if (train.empty()) {
    DT_THROW(ConfigError, "dtrain submit: missing CONFIG; usage: dtrain submit [options] CONFIG [train options], "
                          "e.g. 'dtrain submit --nodes 2 configs/x.toml --set epochs=10'");
  }
  // 'dtrain train' has none of submit's options: one after CONFIG was most likely meant
  // for submit (the check below then fails on it; --dry-run and --no-check would not).
  for (size_t i = 1; i < train.size(); ++i) {
    const std::string& a = train[i];
    if (a.rfind("--", 0) != 0 || a.size() == 2) continue;
    std::string name = a.substr(2, a.find('=') == std::string::npos ? std::string::npos : a.find('=') - 2);
    for (const char* own : {"nodes", "ntasks-per-node", "gpus-per-node", "time", "partition", "account",
                            "job-name", "output", "chdir", "signal-seconds", "max-restarts", "sbatch", "binary", "dry-run",
                            "no-check"}) {
      if (name == own) {
        std::fprintf(stderr,
                     "dtrain submit: warning: '%s' comes after CONFIG '%s', so it goes to 'dtrain train'; submit's "
                     "own options go before CONFIG\n",
                     a.c_str(), train[0].c_str());
      }
    }
  }

  slurm::SubmitOptions o;
  auto positive = [&](const char* name, int min) {
    int64_t v = p.get_int(name);
    if (v < min || v > 1000000) DT_THROW(ConfigError, "dtrain submit: --", name, " must be at least ", min, ", got ", v);
    return static_cast<int>(v);
  };
  o.nodes = positive("nodes", 1);
  o.gpus_per_node = positive("gpus-per-node", 0);
  if (p.has("ntasks-per-node")) {
    o.ntasks_per_node = positive("ntasks-per-node", 1);
  } else if (o.gpus_per_node > 0) {
    o.ntasks_per_node = o.gpus_per_node;  // one rank per GPU
    o.ntasks_from_gpus = true;
  }
  o.signal_seconds = positive("signal-seconds", 1);
  o.max_restarts = positive("max-restarts", 0);
  if (p.has("time")) o.time = p.get("time");
  if (p.has("partition")) o.partition = p.get("partition");
  if (p.has("account")) o.account = p.get("account");
  o.job_name = p.get("job-name");
  o.output = p.get("output");
  o.chdir = p.has("chdir") ? p.get("chdir") : cwd();
  o.extra_sbatch = extra;
  o.dtrain_binary = p.has("binary") ? p.get("binary") : self_path();
  o.train_args = train;
  slurm::check_script_value("--time", o.time);
  slurm::check_script_value("--partition", o.partition);
  slurm::check_script_value("--account", o.account);
  slurm::check_script_value("--job-name", o.job_name);
  slurm::check_script_value("--output", o.output);
  slurm::check_script_value("--chdir", o.chdir);
  for (const std::string& l : extra) slurm::check_script_value("--sbatch", l);
  for (const std::string& a : train) slurm::check_script_value("a training argument", a);

  std::string script = slurm::batch_script(o);
  if (p.flag("dry-run")) {
    std::printf("%s", script.c_str());
    return 0;
  }

  if (!p.flag("no-check")) {
    // A bad config should fail now, not after the job waited in the queue.
    std::vector<std::string> check = {o.dtrain_binary, "train"};
    check.insert(check.end(), train.begin(), train.end());
    check.push_back("--print-config");
    slurm::CommandResult c = slurm::run_command(check);
    if (!c.started || c.exit_code != 0) {
      std::fprintf(stderr, "%s", c.output.c_str());
      DT_THROW(ConfigError, "dtrain submit: 'dtrain train' rejects these arguments (above); nothing was submitted");
    }
  }

  slurm::CommandResult r = slurm::run_command({"sbatch", "--parsable"}, script);
  if (!r.started) {
    DT_THROW(IoError, "dtrain submit: cannot run sbatch: ", r.output,
             " (is this a Slurm login node? 'dtrain submit --dry-run ...' prints the script)");
  }
  std::string out = r.output;
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  if (r.exit_code != 0) DT_THROW(IoError, "dtrain submit: sbatch failed (exit code ", r.exit_code, "): ", out);
  // --parsable prints "JOBID" or "JOBID;CLUSTER", possibly after warnings on other lines.
  std::string last = out.substr(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1);
  std::string id = last.substr(0, last.find(';'));
  if (out != last) std::fprintf(stderr, "%s\n", out.substr(0, out.size() - last.size()).c_str());
  std::printf("%s\n", id.c_str());
  std::fflush(stdout);
  std::fprintf(stderr, "dtrain submit: submitted batch job %s (%d node(s) x %d task(s)); output in %s\n", id.c_str(),
               o.nodes, o.ntasks_per_node, o.output.c_str());
  return 0;
}

}  // namespace dtrain::cli
