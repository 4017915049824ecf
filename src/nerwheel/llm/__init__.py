"""nerwheel.llm"""
