"""nerwheel.serving"""
