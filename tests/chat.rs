//! Chat templates, thinking split, and tokenizer special tokens.

mod common;

use common::*;
use polaris::chat::{opens_thinking, split_thinking, ChatTemplate, Message, Split};
use polaris::tokenize::Tokenizer;

fn qwen3() -> ChatTemplate {
    let src = std::fs::read_to_string(fixtures().join("chat/qwen3.jinja")).unwrap();
    ChatTemplate::new(Some(src), "", "<|im_end|>").unwrap()
}

#[test]
fn qwen3_template_thinking_on_and_off() {
    let t = qwen3();
    let msgs = [Message::user("Write a story.")];
    assert_eq!(
        t.render(&msgs, true, true).unwrap(),
        "<|im_start|>user\nWrite a story.<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(
        t.render(&msgs, true, false).unwrap(),
        "<|im_start|>user\nWrite a story.<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    );
    let with_system = [Message::system("You are a novelist."), Message::user("Hi")];
    assert_eq!(
        t.render(&with_system, true, true).unwrap(),
        "<|im_start|>system\nYou are a novelist.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn qwen3_template_drops_old_reasoning_and_keeps_the_last() {
    let t = qwen3();
    let msgs = [
        Message::user("one"),
        Message::assistant("<think>\nplan A\n</think>\n\nfirst answer"),
        Message::user("two"),
        Message::assistant("<think>\nplan B\n</think>\n\nsecond answer"),
    ];
    assert_eq!(
        t.render(&msgs, false, true).unwrap(),
        "<|im_start|>user\none<|im_end|>\n<|im_start|>assistant\nfirst answer<|im_end|>\n\
         <|im_start|>user\ntwo<|im_end|>\n<|im_start|>assistant\n<think>\nplan B\n</think>\n\nsecond answer<|im_end|>\n"
    );
}

#[test]
fn tiny_template_opens_a_think_block_like_qwen3_5() {
    let t =
        ChatTemplate::new(Some(polaris::model::tiny::CHAT_TEMPLATE.to_string()), "", "<|im_end|>").unwrap();
    let on = t.render(&[Message::user("Hi")], true, true).unwrap();
    assert_eq!(on, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n");
    assert!(opens_thinking(&on));
    let off = t.render(&[Message::user("Hi")], true, false).unwrap();
    assert_eq!(off, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n");
    assert!(!opens_thinking(&off));
}

#[test]
fn plain_fallback_without_a_template() {
    let t = ChatTemplate::new(None, "<s>", "</s>").unwrap();
    assert!(t.is_plain());
    assert_eq!(t.render(&[Message::user("Tell a tale.")], true, true).unwrap(), "Tell a tale.\n\n");
    assert_eq!(
        t.render(&[Message::user("Q"), Message::assistant("A")], false, false).unwrap(),
        "Q\n\nA</s>\n\n"
    );
}

#[test]
fn a_template_that_does_not_parse_is_an_error() {
    let e = ChatTemplate::new(Some("{% for x in %}".into()), "", "").err().unwrap();
    assert!(e.to_string().contains("does not parse"), "{e}");
}

#[test]
fn thinking_split() {
    let s = split_thinking("<think>\nI plan.\n</think>\n\nThe story.", false);
    assert_eq!(
        s,
        Split { thinking: Some("I plan.".into()), story: "The story.".into(), thinking_closed: true }
    );
    // the opening tag was in the prompt
    let s = split_thinking("I plan.\n</think>\nThe story.", true);
    assert_eq!(s.thinking.as_deref(), Some("I plan."));
    assert_eq!(s.story, "The story.");
    // never closed: all of it is thinking, no story
    let s = split_thinking("still planning", true);
    assert_eq!(
        s,
        Split { thinking: Some("still planning".into()), story: String::new(), thinking_closed: false }
    );
    // no thinking at all
    let s = split_thinking("Just a story.", false);
    assert_eq!(s, Split { thinking: None, story: "Just a story.".into(), thinking_closed: true });
    // an empty think block
    assert_eq!(split_thinking("<think>\n\n</think>\n\nX", false).thinking.as_deref(), Some(""));
}

#[test]
fn tokenizer_matches_transformers_and_special_ids_come_from_it() {
    let dir = shared().join("models/qwen3-tiny");
    let exp = read_json(&dir.join("expected.json"));
    let tok = Tokenizer::from_dir(&dir).unwrap();
    let sample = &exp["tokenizer_sample"];
    let ids = tok.encode(sample["text"].as_str().unwrap(), false).unwrap();
    assert_eq!(ids, u32s(&sample["ids"]));
    for (text, id) in exp["special_token_ids"].as_object().unwrap() {
        assert_eq!(tok.token_id(text), Some(id.as_u64().unwrap() as u32), "{text}");
    }
    // stories260K: the post-processor adds BOS when asked to
    let st = Tokenizer::from_dir(&shared().join("models/stories260K-hf")).unwrap();
    assert_eq!(st.encode("Once upon a time", true).unwrap()[0], 1);
    assert_ne!(st.encode("Once upon a time", false).unwrap()[0], 1);
    assert_eq!(st.config_token("eos_token").as_deref(), Some("</s>"));
}
