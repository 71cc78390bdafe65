//! Chat templates: the model's own Jinja template (from tokenizer_config.json or GGUF
//! metadata) rendered with minijinja. Training, evaluation and serving all render through
//! [`ChatTemplate`], so what the model saw in training is what it sees when served.

use minijinja::{Environment, ErrorKind, context};
use serde::{Deserialize, Serialize};

/// A fallback for models that ship no template: ChatML, which SmolLM2 and Qwen2 use.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Errors from compiling or rendering a template.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("chat template does not compile: {0}")]
    Compile(String),
    #[error("chat template failed to render: {0}")]
    Render(String),
}

/// A compiled chat template plus the special tokens it may reference.
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source", &self.source)
            .finish()
    }
}

fn raise_exception(msg: String) -> Result<String, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
}

impl ChatTemplate {
    /// Compiles `source`; `bos_token`/`eos_token` are exposed to the template as variables.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.add_function("raise_exception", raise_exception);
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| TemplateError::Compile(e.to_string()))?;
        Ok(Self {
            env,
            source: source.to_string(),
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
        })
    }

    /// The template text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders a conversation; with `add_generation_prompt` the text ends where the
    /// assistant's answer begins.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, TemplateError> {
        let tmpl = self
            .env
            .get_template("chat")
            .map_err(|e| TemplateError::Render(e.to_string()))?;
        tmpl.render(context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token,
            eos_token => self.eos_token,
        })
        .map_err(|e| TemplateError::Render(e.to_string()))
    }

    /// Splits a conversation whose last message is the assistant's into the prompt (rendered
    /// with the generation prompt) and the answer text that follows it in the full rendering.
    pub fn split_prompt_answer(
        &self,
        messages: &[Message],
    ) -> Result<(String, String), TemplateError> {
        let (last, head) = messages
            .split_last()
            .ok_or_else(|| TemplateError::Render("empty conversation".into()))?;
        if last.role != "assistant" {
            return Err(TemplateError::Render(format!(
                "the last message must be the assistant's answer (got role {:?})",
                last.role
            )));
        }
        let prompt = self.render(head, true)?;
        let full = self.render(messages, false)?;
        let answer = full.strip_prefix(prompt.as_str()).ok_or_else(|| {
            TemplateError::Render(
                "the rendered prompt is not a prefix of the rendered conversation".into(),
            )
        })?;
        Ok((prompt, answer.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_renders_and_splits() {
        let t = ChatTemplate::new(CHATML_TEMPLATE, "", "").unwrap();
        let msgs = vec![
            Message::new("user", "Hi"),
            Message::new("assistant", "Hello!"),
        ];
        let (p, a) = t.split_prompt_answer(&msgs).unwrap();
        assert_eq!(p, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
        assert_eq!(a, "Hello!<|im_end|>\n");
    }
}
