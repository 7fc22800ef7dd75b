//! The rules read from the image's configuration alone: how SageMaker's `docker run IMAGE
//! serve` will start it (ENTRYPOINT, CMD, an init), for which CPU, as which user, and how
//! big it is.

use std::collections::HashMap;

use bollard::models::ImageInspect;

use super::Rule;
use crate::runtime::InstanceType;

/// The label that says the image serves on `SAGEMAKER_BIND_TO_PORT`.
pub const ACCEPTS_BIND_TO_PORT: &str = "com.amazonaws.sagemaker.capabilities.accept-bind-to-port";

/// Serverless endpoints take images up to this size; beyond it every start is slow too.
const LARGE_IMAGE: u64 = 10 * 1024 * 1024 * 1024;

/// Init processes that people put first in an ENTRYPOINT.
const INITS: [&str; 4] = ["tini", "tini-static", "dumb-init", "docker-init"];

/// What the engine says about the image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFacts {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub user: String,
    /// As Docker names it: `amd64`, `arm64`, ….
    pub architecture: String,
    pub labels: HashMap<String, String>,
    pub size: u64,
}

impl ImageFacts {
    pub fn from_inspect(inspect: &ImageInspect) -> ImageFacts {
        let config = inspect.config.clone().unwrap_or_default();
        ImageFacts {
            entrypoint: config.entrypoint.unwrap_or_default(),
            cmd: config.cmd.unwrap_or_default(),
            user: config.user.unwrap_or_default(),
            architecture: inspect.architecture.clone().unwrap_or_default(),
            labels: config.labels.unwrap_or_default(),
            size: inspect
                .size
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or(0),
        }
    }

    /// The image declares that it serves on `SAGEMAKER_BIND_TO_PORT`.
    pub fn accepts_bind_to_port(&self) -> bool {
        self.labels
            .get(ACCEPTS_BIND_TO_PORT)
            .is_some_and(|v| v == "true")
    }

    /// The command line SageMaker's `docker run IMAGE serve` runs.
    fn serve_command(&self) -> Vec<String> {
        let mut command = self.entrypoint.clone();
        command.push("serve".into());
        command
    }
}

/// The image rules, in report order.
pub fn rules(facts: &ImageFacts, instance_type: &InstanceType) -> Vec<Rule> {
    vec![
        entrypoint(facts),
        init(facts),
        cmd(facts),
        architecture(facts, instance_type),
        user(facts),
        size(facts),
    ]
}

fn json(words: &[String]) -> String {
    serde_json::to_string(words).unwrap_or_default()
}

/// A shell-form ENTRYPOINT is stored as `["/bin/sh", "-c", "LINE"]`.
fn shell_line(entrypoint: &[String]) -> Option<&str> {
    match entrypoint {
        [shell, flag, line, ..]
            if flag == "-c"
                && matches!(
                    shell.rsplit('/').next(),
                    Some("sh" | "bash" | "dash" | "ash")
                ) =>
        {
            Some(line)
        }
        _ => None,
    }
}

fn entrypoint(f: &ImageFacts) -> Rule {
    const CODE: &str = "image.entrypoint";
    if f.entrypoint.is_empty() {
        return Rule::pass(
            CODE,
            "no ENTRYPOINT: SageMaker runs `serve` itself, so an executable named serve must be on the image's PATH (the start rules show whether it is)",
        );
    }
    if let Some(line) = shell_line(&f.entrypoint) {
        let measured = format!(
            "shell form {}: the shell is PID 1, `serve` becomes the shell's $0 instead of an argument of your program{}",
            json(&f.entrypoint),
            if line.trim_start().starts_with("exec ") {
                ""
            } else {
                ", and the shell does not pass SIGTERM on (every stop waits 30 s for SIGKILL)"
            }
        );
        let fix = "write ENTRYPOINT in exec form, e.g. ENTRYPOINT [\"python\", \"/opt/program/serve.py\"], so your program is PID 1 and gets `serve` and SIGTERM";
        return if line.trim_start().starts_with("exec ") {
            Rule::warn(CODE, measured, fix)
        } else {
            Rule::fail(CODE, measured, fix)
        };
    }
    Rule::pass(
        CODE,
        format!(
            "exec form {}: SageMaker runs {}",
            json(&f.entrypoint),
            json(&f.serve_command())
        ),
    )
}

fn init(f: &ImageFacts) -> Rule {
    const CODE: &str = "image.init";
    let Some(first) = f.entrypoint.first() else {
        return Rule::pass(CODE, "no init process in ENTRYPOINT");
    };
    let name = first.rsplit('/').next().unwrap_or(first);
    if !INITS.contains(&name) {
        return Rule::pass(CODE, "no init process in ENTRYPOINT");
    }
    // tini [-flags] [--] PROGRAM: is there a program after the init's own options?
    let program = f
        .entrypoint
        .iter()
        .skip(1)
        .find(|w| !w.starts_with('-'))
        .cloned();
    let mut measured = format!(
        "ENTRYPOINT starts with {name}; SageMaker documents tini as an entrypoint as unsupported (it mishandles `serve` and `train`)"
    );
    if program.is_none() {
        measured.push_str(&format!(
            ", and the program comes from CMD {}, which SageMaker replaces: {name} will run `serve`",
            json(&f.cmd)
        ));
    }
    Rule::warn(
        CODE,
        measured,
        "drop the init from ENTRYPOINT and start your server directly in exec form; have it handle SIGTERM itself",
    )
}

fn cmd(f: &ImageFacts) -> Rule {
    const CODE: &str = "image.cmd";
    // `train` is the other argument SageMaker passes: an image that trains and serves
    // loses nothing either.
    if f.cmd.is_empty() || f.cmd == ["serve"] || f.cmd == ["train"] {
        return Rule::pass(
            CODE,
            format!(
                "CMD {}: nothing is lost when SageMaker passes `serve`",
                json(&f.cmd)
            ),
        );
    }
    Rule::warn(
        CODE,
        format!(
            "CMD {} is never run: SageMaker starts the image with the single argument `serve`, which replaces it",
            json(&f.cmd)
        ),
        "put what CMD carries into ENTRYPOINT (exec form) or read it from the environment",
    )
}

fn architecture(f: &ImageFacts, instance_type: &InstanceType) -> Rule {
    const CODE: &str = "image.architecture";
    let Some(wanted) = instance_type.architecture() else {
        return Rule::pass(
            CODE,
            format!("{}; {} runs any", f.architecture, instance_type.name),
        );
    };
    if f.architecture == wanted {
        return Rule::pass(
            CODE,
            format!("{}, as {} needs", f.architecture, instance_type.name),
        );
    }
    Rule::fail(
        CODE,
        format!(
            "the image is built for {}, but {} runs {wanted}: the instance would fail with `exec format error`",
            if f.architecture.is_empty() { "an unknown CPU" } else { &f.architecture },
            instance_type.name
        ),
        format!("build it for linux/{wanted} (docker buildx build --platform linux/{wanted}), or choose an instance type of the image's architecture"),
    )
}

fn user(f: &ImageFacts) -> Rule {
    const CODE: &str = "image.user";
    let user = f.user.trim();
    if matches!(user, "" | "root" | "0" | "0:0" | "root:root") {
        return Rule::pass(CODE, "runs as root, as SageMaker expects");
    }
    Rule::warn(
        CODE,
        format!("USER {user}: SageMaker expects containers to run as root; as another user the server may not read /opt/ml/model or write where the toolkits write"),
        "remove USER from the Dockerfile (or set USER root)",
    )
}

fn size(f: &ImageFacts) -> Rule {
    const CODE: &str = "image.size";
    let shown = if f.size >= 1_000_000_000 {
        format!("{:.1} GB", f.size as f64 / 1e9)
    } else {
        format!("{:.1} MB", f.size as f64 / 1e6)
    };
    if f.size > LARGE_IMAGE {
        return Rule::warn(
            CODE,
            format!("{shown}: serverless endpoints take images up to 10 GB, and every new instance pulls the whole image"),
            "use a slimmer base image and leave build tools and caches out (multi-stage builds)",
        );
    }
    Rule::pass(CODE, shown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Verdict;
    use crate::runtime::instance::lookup;

    fn facts(entrypoint: &[&str], cmd: &[&str]) -> ImageFacts {
        ImageFacts {
            entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            architecture: "amd64".into(),
            ..ImageFacts::default()
        }
    }

    fn verdict(rules: &[Rule], code: &str) -> Verdict {
        rules.iter().find(|r| r.code == code).unwrap().verdict
    }

    #[test]
    fn exec_form_passes_and_shell_form_fails() {
        let m5 = lookup("ml.m5.large").unwrap();
        let rules = rules(&facts(&["/echo"], &[]), &m5);
        assert!(
            rules.iter().all(|r| r.verdict == Verdict::Pass),
            "{rules:?}"
        );
        let shell = rules_for(&["/bin/sh", "-c", "python serve.py"], &[]);
        assert_eq!(verdict(&shell, "image.entrypoint"), Verdict::Fail);
        let exec = rules_for(&["/bin/sh", "-c", "exec python serve.py"], &[]);
        assert_eq!(verdict(&exec, "image.entrypoint"), Verdict::Warn);
        let none = rules_for(&[], &["serve"]);
        assert_eq!(verdict(&none, "image.entrypoint"), Verdict::Pass);
        assert_eq!(verdict(&none, "image.cmd"), Verdict::Pass);
    }

    fn rules_for(entrypoint: &[&str], cmd: &[&str]) -> Vec<Rule> {
        rules(&facts(entrypoint, cmd), &lookup("ml.m5.large").unwrap())
    }

    #[test]
    fn an_init_and_a_lost_cmd_warn() {
        let tini = rules_for(&["/usr/bin/tini", "--"], &["python", "serve.py"]);
        let init = tini.iter().find(|r| r.code == "image.init").unwrap();
        assert_eq!(init.verdict, Verdict::Warn);
        assert!(
            init.measured.contains("will run `serve`"),
            "{}",
            init.measured
        );
        assert_eq!(verdict(&tini, "image.cmd"), Verdict::Warn);
        let with_program = rules_for(&["tini", "-g", "--", "/serve"], &[]);
        let init = with_program
            .iter()
            .find(|r| r.code == "image.init")
            .unwrap();
        assert_eq!(init.verdict, Verdict::Warn);
        assert!(!init.measured.contains("will run"), "{}", init.measured);
    }

    #[test]
    fn architecture_user_and_size() {
        let graviton = lookup("ml.c6g.large").unwrap();
        let rules_arm = rules(&facts(&["/echo"], &[]), &graviton);
        let arch = rules_arm
            .iter()
            .find(|r| r.code == "image.architecture")
            .unwrap();
        assert_eq!(arch.verdict, Verdict::Fail);
        assert!(arch.measured.contains("arm64"), "{}", arch.measured);
        let local = rules(&facts(&["/echo"], &[]), &lookup("local").unwrap());
        assert_eq!(verdict(&local, "image.architecture"), Verdict::Pass);
        let mut f = facts(&["/echo"], &[]);
        f.user = "1000:1000".into();
        f.size = 11 * 1024 * 1024 * 1024;
        let m5 = lookup("ml.m5.large").unwrap();
        let r = rules(&f, &m5);
        assert_eq!(verdict(&r, "image.user"), Verdict::Warn);
        assert_eq!(verdict(&r, "image.size"), Verdict::Warn);
        f.user = "root".into();
        assert_eq!(verdict(&rules(&f, &m5), "image.user"), Verdict::Pass);
    }
}
