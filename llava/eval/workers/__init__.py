"""The workers shared by many benchmarks; a benchmark with its own question format or prompt rule has its worker
in its folder (llava/eval/benchmarks/<folder>/worker.py).

model_vqa_loader: short answers to a LLaVA question jsonl (TextVQA, POPE, MME, GQA, SEED, VQAv2, VizWiz), images
prepared in DataLoader workers; model_vqa: open answers (MM-Vet, LLaVA-Bench).
"""
